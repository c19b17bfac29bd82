"""The GRU layer: its parameters, config, variants and routing; the shared driver (`_driver.py`) does the rest.

The math lives in the floor, `grukit.functional`; `grukit.kernels.route.choose` decides once per call how it
runs (the fused kernel eagerly, the registered op ``grukit::gru_sequence`` in graphs, torch's own GRU through
`grukit.kernels.vf` on CUDA or when the native kernel is missing, ONNX GRU nodes, the composite loops).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn

from .. import _checks, kernels
from ..functional import gru as fgru
from ..kernels import export as export_op
from ..kernels import onnx_export, route, vf
from . import _driver, _fast


class GRUGates(NamedTuple):
    """The gate activations of a :class:`GRU` call, returned by ``gru(x, return_gates=True)``.

    Each field is (L, D, T, B, H) — L = num_layers, D = 2 if bidirectional else 1 — time-major whatever
    ``batch_first`` is, and zero past a sequence's length when ``lengths`` is given. Direction 1 is indexed
    by input time (its step t read x_t).

    Attributes:
        z: the update gate, the share of the old state kept: h' = z ⊙ h + (1 − z) ⊙ n.
        r: the reset gate.
        n: the candidate state.

    Example:
        >>> import torch, grukit
        >>> gru = grukit.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True)
        >>> _, _, gates = gru(torch.randn(5, 7, 3), return_gates=True)
        >>> tuple(gates.z.shape)
        (2, 2, 7, 5, 4)
        >>> bool(((gates.z > 0) & (gates.z < 1)).all())
        True
    """

    z: Tensor
    r: Tensor
    n: Tensor


@dataclasses.dataclass
class GRUConfig:
    """Every constructor argument of :class:`GRU` (device excluded); ``grukit.save`` stores it with the model.

    The fields are the arguments of :class:`GRU` of the same names; ``dtype`` is a name such as
    ``"float32"``. ``GRU.config`` returns one, ``GRU.from_config`` builds a layer from one (or from its
    ``dataclasses.asdict`` dictionary).

    Example:
        >>> import dataclasses, grukit
        >>> cfg = grukit.GRU(3, 4, num_layers=2, batch_first=True).config
        >>> cfg.num_layers, cfg.batch_first, cfg.dtype
        (2, True, 'float32')
        >>> grukit.GRU.from_config(dataclasses.asdict(cfg)).config == cfg
        True
    """

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    reset_after: bool = True
    backend: str = "auto"
    dtype: str = "float32"
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    dropconnect: float = 0.0


def _dtype_name(dtype: Any) -> str:
    return str(dtype if dtype is not None else torch.get_default_dtype()).replace("torch.", "")


class GRU(nn.Module):
    """Multi-layer GRU with torch.nn.GRU's shapes, semantics and state_dict (for reset_after=True).

    ``gru(input, hx=None, lengths=None, return_gates=False) -> (output, h_n[, gates])``; see :meth:`forward`
    for the shapes and :meth:`step` for streaming. With D = 2 if bidirectional else 1, layer k has the
    parameters ``weight_ih_l{k}[_reverse]`` (3H, I or D·H), ``weight_hh_l{k}[_reverse]`` (3H, H) and, with
    ``bias``, ``bias_ih_l{k}[_reverse]`` / ``bias_hh_l{k}[_reverse]`` (3H,), gate rows stacked r, z, n —
    torch.nn.GRU's names and layout, so ``load_state_dict`` works both ways.

    Args:
        input_size: I, the number of features of the input.
        hidden_size: H, the number of features of the state.
        num_layers: L, the number of stacked layers.
        bias: learn the biases b_ih and b_hh.
        batch_first: input and output are (B, T, ·) instead of (T, B, ·); hx and h_n are not affected.
        dropout: dropout on the outputs of every layer but the last, in training.
        bidirectional: run a reverse direction too and concatenate its outputs (D = 2).
        reset_after: True applies the reset gate after the recurrent product, r ⊙ (W_hn h + b_hn)
            (torch, cuDNN, Keras' default); False before it, W_hn (r ⊙ h) + b_hn (the original paper).
        device: where the parameters live.
        dtype: the parameters' dtype (torch's default dtype if None); inputs must have the same one.
        backend: ``"auto"`` (the fused CPU kernel where it supports the call, else the composite loop),
            ``"fused"`` (refuse calls the fused kernel cannot run) or ``"torch"`` (the composite loop).
        layer_norm: layer norm of the input and recurrent pre-activations per gate group, with learnable
            gains ``ln_gain_ih_l{k}`` / ``ln_gain_hh_l{k}`` (3H,).
        recurrent_dropout: variational dropout of the state feeding W_hh, one mask per sequence (training).
        zoneout: each unit keeps its previous value with this probability (training); its expectation
            in eval.
        dropconnect: dropout on W_hh, one mask per forward call (training).

    The four variants (see ``grukit.functional.gru``) are off by default; off, they leave the state_dict and
    the fused path exactly as for the plain GRU. In training each call (``forward`` or ``step``) draws its
    own masks. NaN in the input propagates to the outputs that depend on it; it never raises.

    Raises:
        TypeError: an argument of the wrong type (e.g. a float ``hidden_size``).
        ValueError: a size that is not positive, a probability outside [0, 1), an unknown ``backend``.

    Example:
        >>> import torch, grukit
        >>> ref = torch.nn.GRU(3, 4, num_layers=2, batch_first=True)
        >>> gru = grukit.GRU(3, 4, num_layers=2, batch_first=True)
        >>> _ = gru.load_state_dict(ref.state_dict())
        >>> x = torch.randn(5, 7, 3)  # (B, T, I)
        >>> out, h_n = gru(x)
        >>> tuple(out.shape), tuple(h_n.shape)
        ((5, 7, 4), (2, 5, 4))
        >>> torch.allclose(out, ref(x)[0], atol=1e-6)
        True
    """

    _step_plan: Any = None  # the streaming step's cached plan (grukit.kernels.stream.StepPlan)
    _qweights: str | None = (
        None  # set by grukit.quantize: "bf16" or "int8" W_ih/W_hh, float32 everything else
    )

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        reset_after: bool = True,
        device: Any = None,
        dtype: Any = None,
        backend: str = "auto",
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        dropconnect: float = 0.0,
    ) -> None:
        super().__init__()
        # int8 weights (grukit.quantize) across formats: dequantized into float modules, float ones quantized
        self.register_load_state_dict_pre_hook(_fast.load_state_pre_hook)  # type: ignore[no-untyped-call]
        self.input_size = _checks.positive_int("input_size", input_size)
        self.hidden_size = _checks.positive_int("hidden_size", hidden_size)
        self.num_layers = _checks.positive_int("num_layers", num_layers)
        self.dropout = _checks.probability("dropout", dropout)
        self.backend = _checks.backend(backend)
        if not isinstance(layer_norm, bool):
            raise TypeError(f"layer_norm must be a bool, got {type(layer_norm).__name__}")
        self.layer_norm = layer_norm
        self.recurrent_dropout = _checks.probability("recurrent_dropout", recurrent_dropout)
        self.zoneout = _checks.probability("zoneout", zoneout)
        self.dropconnect = _checks.probability("dropconnect", dropconnect)
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.bidirectional, self.reset_after = bool(bidirectional), bool(reset_after)
        self.num_directions = 2 if bidirectional else 1
        H, D = hidden_size, self.num_directions
        kw = {"device": device, "dtype": dtype}
        self._param_names: list[tuple[str, str, str | None, str | None]] = []
        self._ln_names: list[tuple[str, str]] = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else D * H
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                w_ih, w_hh = f"weight_ih{sfx}", f"weight_hh{sfx}"
                setattr(self, w_ih, nn.Parameter(torch.empty(3 * H, layer_in, **kw)))
                setattr(self, w_hh, nn.Parameter(torch.empty(3 * H, H, **kw)))
                b_ih = b_hh = None
                if bias:
                    b_ih, b_hh = f"bias_ih{sfx}", f"bias_hh{sfx}"
                    setattr(self, b_ih, nn.Parameter(torch.empty(3 * H, **kw)))
                    setattr(self, b_hh, nn.Parameter(torch.empty(3 * H, **kw)))
                self._param_names.append((w_ih, w_hh, b_ih, b_hh))
                if layer_norm:  # names outside weight_*/bias_* so torch interop refuses them
                    ln = (f"ln_gain_ih{sfx}", f"ln_gain_hh{sfx}")
                    setattr(self, ln[0], nn.Parameter(torch.empty(3 * H, **kw)))
                    setattr(self, ln[1], nn.Parameter(torch.empty(3 * H, **kw)))
                    self._ln_names.append(ln)
        self._dtype_name = _dtype_name(dtype)
        self.reset_parameters()

    # ----------------------------------------------------------------------------------------- config
    @property
    def config(self) -> GRUConfig:
        """This layer's :class:`GRUConfig` (its constructor arguments, the dtype as a name)."""
        return GRUConfig(
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.bias,
            self.batch_first,
            self.dropout,
            self.bidirectional,
            self.reset_after,
            self.backend,
            # quantized weights (grukit.quantize) compute in float32 (int8: in the biases' dtype after
            # .double() or .half()): the layer it describes is a float one of that dtype
            _dtype_name(
                (_fast.compute_dtype(self) if self._qweights == "int8" else torch.float32)
                if self._qweights
                else self.weight_ih_l0.dtype
            ),
            layer_norm=self.layer_norm,
            recurrent_dropout=self.recurrent_dropout,
            zoneout=self.zoneout,
            dropconnect=self.dropconnect,
        )

    @classmethod
    def from_config(cls, config: GRUConfig | dict[str, Any], device: Any = None) -> GRU:
        """A freshly initialised layer built from a :class:`GRUConfig` or its ``dataclasses.asdict`` dict."""
        cfg = dataclasses.asdict(config) if isinstance(config, GRUConfig) else dict(config)
        dtype = getattr(torch, cfg.pop("dtype", "float32"))
        return cls(**cfg, device=device, dtype=dtype)

    @classmethod
    def from_torch(cls, module: nn.GRU, backend: str = "auto") -> GRU:
        """A grukit.GRU with the same configuration and weights as a ``torch.nn.GRU`` (same as ``grukit.from_torch``).

        Example:
            >>> import torch, grukit
            >>> ref = torch.nn.GRU(3, 4)
            >>> grukit.GRU.from_torch(ref).hidden_size
            4
        """
        if not isinstance(module, nn.GRU):
            raise TypeError(f"GRU.from_torch expected a torch.nn.GRU, got {type(module).__name__}")
        if getattr(module, "proj_size", 0):
            raise ValueError("torch.nn.GRU has no proj_size; got a module with proj_size set")
        p = next(module.parameters())
        out = cls(
            module.input_size,
            module.hidden_size,
            module.num_layers,
            module.bias,
            module.batch_first,
            float(module.dropout),
            module.bidirectional,
            reset_after=True,
            device=p.device,
            dtype=p.dtype,
            backend=backend,
        )
        with torch.no_grad():
            out.load_state_dict(module.state_dict())
        return out.train(module.training)

    # ------------------------------------------------------------------------ torch.nn.GRU's attributes
    @property
    def _flat_weights_names(self) -> list[str]:
        """Parameter names in torch.nn.GRU's order: per layer, per direction, w_ih, w_hh[, b_ih, b_hh]."""
        return [n for names in self._param_names for n in names if n is not None]

    @property
    def _flat_weights(self) -> list[Tensor]:
        """The parameters in ``_flat_weights_names`` order (torch.nn.GRU's)."""
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """Per layer and direction, [w_ih, w_hh, b_ih, b_hh] (without biases: [w_ih, w_hh]), as torch's."""
        return [[getattr(self, n) for n in names if n is not None] for names in self._param_names]

    def flatten_parameters(self) -> None:
        """A no-op kept for torch.nn.GRU compatibility (grukit never needs a flat weight buffer)."""

    def reset_parameters(self) -> None:
        """Uniform(−1/√H, 1/√H) for every weight and bias, as torch does; layer-norm gains start at 1."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        for names in self._ln_names:
            for n in names:
                nn.init.ones_(getattr(self, n))

    def layer_weights(
        self, layer: int, direction: int = 0
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of one layer and direction (biases None without bias)."""
        names = self._param_names[layer * self.num_directions + direction]
        # Direct dict reads (nn.Module.__getattr__ is slow on the streaming path); getattr for names that are
        # not plain registered parameters (parametrizations, weight_norm hooks).
        params = self._parameters
        return tuple(
            None
            if n is None
            else (params.get(n) if n in params and params[n] is not None else getattr(self, n))
            for n in names
        )  # type: ignore[return-value]

    def layer_norm_gains(
        self, layer: int, direction: int = 0
    ) -> tuple[Tensor | None, Tensor | None]:
        """(ln_gain_ih, ln_gain_hh) of one layer and direction, (None, None) without layer_norm."""
        if not self.layer_norm:
            return None, None
        a, b = self._ln_names[layer * self.num_directions + direction]
        return getattr(self, a), getattr(self, b)

    def _uses_variant_loop(self) -> bool:
        """Whether this call's per-step math differs from the plain GRU (then the composite variant loop runs)."""
        return self.layer_norm or self.zoneout > 0 or (self.training and self.recurrent_dropout > 0)

    def _spec(self, kind: str = "gru") -> route.Spec:
        """This layer's configuration as :func:`grukit.kernels.route.choose` reads it, for this call."""
        return route.Spec(
            kind,
            self.backend,
            self.reset_after,
            self._uses_variant_loop(),
            not (self.layer_norm or self.zoneout),
            self.training and self.dropconnect > 0,
            self.training and (self.dropconnect or self.recurrent_dropout or self.zoneout) > 0,
        )

    def _apply(self, fn: Any, recurse: bool = True) -> GRU:
        route.bump(self)  # .to(), .double(), ...: the parameters' cached checks are stale
        self._step_plan = None
        fn = _fast.keep_quantized(self, fn)  # int8 weights and scales keep their dtypes
        out = cast("GRU", super()._apply(fn, recurse))  # type: ignore[no-untyped-call]
        _fast.settle_format(self)  # bf16 weights converted to another dtype: an ordinary module now
        return out

    def _draw_masks(self, T: int, B: int, like: Tensor) -> fgru.VariantMasks:
        """The random masks of one layer and direction for one call (training only; None where inactive)."""
        if not self.training:
            return fgru.VariantMasks()
        H = self.hidden_size
        return fgru.VariantMasks(
            recurrent=fgru.dropout_mask((B, H), self.recurrent_dropout, like)
            if self.recurrent_dropout
            else None,
            zoneout=fgru.zoneout_mask((T, B, H), self.zoneout, like) if self.zoneout else None,
            dropconnect=fgru.dropout_mask((3 * H, H), self.dropconnect, like)
            if self.dropconnect
            else None,
        )

    def _variant_kwargs(self, layer: int, d: int, masks: fgru.VariantMasks) -> dict[str, Any]:
        """The variant keyword arguments of ``grukit.functional.sequence`` for one layer and direction."""
        ln_ih, ln_hh = self.layer_norm_gains(layer, d)
        zone = masks.zoneout if self.training else (self.zoneout or None)
        return {"ln_ih": ln_ih, "ln_hh": ln_hh, "recurrent_mask": masks.recurrent, "zoneout": zone}

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (
            ("num_layers", 1),
            ("bias", True),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
            ("reset_after", True),
            ("backend", "auto"),
            ("layer_norm", False),
            ("recurrent_dropout", 0.0),
            ("zoneout", 0.0),
            ("dropconnect", 0.0),
        ):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s

    # ---------------------------------------------------------------------------------------- forward
    def forward(
        self, input: Any, hx: Tensor | None = None, lengths: Any = None, return_gates: bool = False
    ) -> Any:
        """Run the GRU over a whole sequence.

        Shapes: D = 2 if bidirectional else 1, L = num_layers, T steps, B sequences.

        Args:
            input: (T, B, I), (B, T, I) if ``batch_first``, (T, I) unbatched, or a ``PackedSequence``.
            hx: the initial state (L·D, B, H), or (L·D, H) unbatched; None means zeros.
            lengths: (B,) integers in 1..T, or None. Outputs past a sequence's end are zero, ``h_n`` is the
                state at its last valid step, and the reverse direction starts at each sequence's own end.
            return_gates: also return the gate activations.

        Returns:
            ``(output, h_n)``, or ``(output, h_n, gates)`` with ``return_gates``:
            output (T, B, D·H) — (B, T, D·H) if ``batch_first``, (T, D·H) unbatched, a ``PackedSequence``
            for packed input — the top layer's states, both directions concatenated;
            h_n (L·D, B, H) — (L·D, H) unbatched — every layer's and direction's final state;
            gates a :class:`GRUGates`, each field (L, D, T, B, H).

        Raises:
            ShapeError: input of the wrong rank or feature size, T = 0, or hx of the wrong shape.
            TypeError: input or hx not a floating-point tensor of the parameters' dtype, or non-integer
                lengths.
            ValueError: lengths outside 1..T or of the wrong size, lengths given with a PackedSequence, or
                ``backend="fused"`` for a call only the composite loop runs (layer_norm, zoneout).

        Example:
            >>> import torch, grukit
            >>> gru = grukit.GRU(3, 4, bidirectional=True)
            >>> x = torch.randn(7, 2, 3)  # (T, B, I)
            >>> out, h_n = gru(x, lengths=torch.tensor([7, 5]))
            >>> tuple(out.shape), tuple(h_n.shape)
            ((7, 2, 8), (2, 2, 4))
            >>> bool((out[5:, 1] == 0).all())  # past the second sequence's length
            True
        """
        if self._qweights:  # grukit.quantize: inference on float32 copies of the weights
            _fast.refuse_training("GRU", self, (input, hx))
            return _fast.upcast_call(self, "forward", input, hx, lengths, return_gates)
        p = _driver.prepare(self, "GRU", input, hx, lengths, self._param0())
        how = route.choose(
            self._spec(),
            p.x,
            module=self,
            weights=(("h0", p.h0),),
            return_gates=return_gates,
            autocast=p.autocast,
        ).route
        with _driver.no_autocast(p.autocast):
            if how == "onnx":
                out, h_n = self._onnx_layers(p)
                gate_layers: list[list[Any]] = []
            # torch.export (issue 29): the scan-loop op grukit::gru_sequence_export, which a plain
            # run_decompositions() removes; eager, compile, trace and ONNX keep the other routes.
            elif how == "export":
                out, h_n, _ = _driver.run_layers(self, p, self._export_direction, False)
                gate_layers = []
            elif how == "aten":
                out, h_n = vf.gru_stack(
                    p.x,
                    p.h0,
                    self._flat_weights,
                    self.bias,
                    self.num_layers,
                    self.dropout,
                    self.training,
                    self.bidirectional,
                    p.lengths,
                )
                gate_layers = []
            else:
                direction = functools.partial(self._direction, how)
                out, h_n, gate_layers = _driver.run_layers(self, p, direction, return_gates)
        output, h_n = _driver.finish(p, out, h_n)
        if return_gates:
            return output, h_n, GRUGates(*_driver.stack_gates(gate_layers, 3))
        return output, h_n

    def _param0(self) -> Tensor:
        """weight_ih_l0, the parameter whose dtype the inputs must have."""
        w = self._parameters.get("weight_ih_l0")
        return w if w is not None else cast(Tensor, self.weight_ih_l0)

    def _onnx_layers(self, p: _driver.Prepared) -> tuple[Tensor, Tensor]:
        """One ONNX GRU node per layer (export is inference: no dropout, no regularizer masks)."""
        D, layer_in, h_n = self.num_directions, p.x, []
        for layer in range(self.num_layers):
            weights = [self.layer_weights(layer, d) for d in range(D)]
            h0 = p.h0[layer * D : (layer + 1) * D]
            layer_in, h = onnx_export.gru_layer(layer_in, h0, weights, self.reset_after, p.lengths)
            h_n.append(h)
        return layer_in, torch.cat(h_n)

    def _export_direction(
        self, layer: int, d: int, x: Tensor, h0: Tensor, lengths: Tensor | None, _gates: bool
    ) -> tuple[Tensor, Tensor, Any]:
        """One layer and direction through ``grukit::gru_sequence_export`` (eval-mode variants included)."""
        w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer, d)
        ln_ih, ln_hh = self.layer_norm_gains(layer, d)
        zone = 0.0 if self.training else self.zoneout
        return export_op.sequence(
            x, h0, w_ih, w_hh, b_ih, b_hh, self.reset_after, lengths, d == 1, ln_ih, ln_hh, zone
        )

    def _direction(
        self,
        how: str,
        layer: int,
        d: int,
        x: Tensor,
        h0: Tensor,
        lengths: Tensor | None,
        return_gates: bool,
    ) -> tuple[Tensor, Tensor, Any]:
        """One layer and direction over time-major x (T, B, in) on route ``how`` → (out, h_n, gates)."""
        w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer, d)
        kw: dict[str, Any] = dict(
            x=x,
            h0=h0,
            w_ih=w_ih,
            w_hh=w_hh,
            b_ih=b_ih,
            b_hh=b_hh,
            reset_after=self.reset_after,
            lengths=lengths,
            reverse=d == 1,
            return_gates=return_gates,
        )
        variant = how == "variant" or (how == "native" and self._uses_variant_loop())
        if variant or (self.training and self.dropconnect):
            masks = self._draw_masks(x.shape[0], x.shape[1], x)
            if masks.dropconnect is not None:
                kw["w_hh"] = w_hh * masks.dropconnect  # one DropConnect mask for the whole call
            if variant:  # the native variant loop or the composite one, with the same masks
                vkw = self._variant_kwargs(layer, d, masks)
                return kernels.run("variant", how, **kw, **vkw)  # type: ignore[no-any-return]
        return kernels.run("sequence", how, **kw)  # type: ignore[no-any-return]

    # -------------------------------------------------------------------------------------- streaming
    def step(self, x_t: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One time step for streaming: ``(x_t, h) -> (y_t, h_new)``.

        Feeding a sequence step by step (or in chunks via ``gru(chunk, h)``) gives the same outputs as one
        call. Unidirectional only: the reverse direction needs the future.

        Args:
            x_t: one step of input, (B, I), or (I,) unbatched.
            h: the state (L, B, H), or (L, H) unbatched; None means zeros.

        Returns:
            ``(y_t, h_new)``: the top layer's new state y_t (B, H) — (H,) unbatched — and every layer's new
            state h_new (L, B, H) — (L, H) unbatched —, to pass as ``h`` to the next step.

        Raises:
            ValueError: the layer is bidirectional, or ``backend="fused"`` with a variant that runs the
                composite loop.
            ShapeError: x_t or h of the wrong shape.
            TypeError: x_t or h not a floating-point tensor of the parameters' dtype.

        Example:
            >>> import torch, grukit
            >>> gru = grukit.GRU(3, 4, num_layers=2)
            >>> x = torch.randn(6, 1, 3)  # (T, B, I)
            >>> h, ys = None, []
            >>> for x_t in x:
            ...     y, h = gru.step(x_t, h)
            ...     ys.append(y)
            >>> tuple(y.shape), tuple(h.shape)
            ((1, 4), (2, 1, 4))
            >>> out, h_n = gru(x)
            >>> torch.allclose(torch.stack(ys), out, atol=1e-6), torch.allclose(h, h_n, atol=1e-6)
            (True, True)
        """
        plan = self._step_plan
        if plan is not None and not (
            self.training and (self.dropout or self.dropconnect or self.recurrent_dropout)
        ):  # the streaming step: a few cheap checks and one native call for all layers
            res = plan.stack(self._parameters, x_t, h)
            if res is not None:
                return res  # type: ignore[no-any-return]
        return self._step(x_t, h)

    def _plan(self, x_t: Any, h: Any) -> Any:
        """The streaming step's plan if this call can use it (built or reused), else None."""
        if (
            self.backend == "torch"
            or self.num_directions != 1
            or self._uses_variant_loop()
            or self.layer_norm
            or (self.training and (self.dropout or self.dropconnect or self.recurrent_dropout))
        ):
            return None
        layers: Any = [self.layer_weights(k) for k in range(self.num_layers)]
        names: Any = self._param_names
        if self._qweights == "int8":
            names, layers = _fast.with_scales(self, names, layers)
        return _fast.build_plan(
            self,
            x_t,
            h,
            names,
            layers,
            self.input_size,
            self.hidden_size,
            self.reset_after,
        )

    def _step(self, x_t: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        """The general streaming step (every check, a dispatch per layer); builds the step plan."""
        bf16 = bool(self._qweights)  # bf16 or int8 weights
        if bf16:
            _fast.refuse_training("GRU", self, (x_t, h))
        plan = self._plan(x_t, h)
        if plan is not None:
            res = plan.stack(self._parameters, x_t, h)
            if res is not None:
                return res  # type: ignore[no-any-return]
        if bf16:
            return _fast.upcast_call(self, "step", x_t, h)  # type: ignore[no-any-return]
        x, h0, unbatched, ac = _driver.prepare_step(self, "GRU", x_t, h, self._param0())
        how = route.choose(
            self._spec("cell"), x, module=self, weights=(("h", h0),), autocast=ac
        ).route
        step = functools.partial(self._step_layer, how)
        if ac is None:
            y, h_new = _driver.step_layers(self, x, h0, step)
        else:
            with _driver.no_autocast(ac):
                y, h_new = _driver.step_layers(self, x, h0, step)
        return _driver.finish_step(y, h_new, unbatched, ac)

    def _step_layer(self, how: str, layer: int, x: Tensor, h: Tensor) -> Tensor:
        """One layer's step on route ``how`` ("native", "composite" or "variant")."""
        w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer)
        masks = (
            self._draw_masks(1, x.shape[0], x)
            if how == "variant" or (self.training and self.dropconnect)
            else fgru.VariantMasks()
        )
        if masks.dropconnect is not None:
            w_hh = w_hh * masks.dropconnect
        if how == "variant":
            vkw = self._variant_kwargs(layer, 0, masks)
            zone = vkw.pop("zoneout")
            return fgru.cell(
                x,
                h,
                w_ih,
                w_hh,
                b_ih,
                b_hh,
                self.reset_after,
                zoneout=zone[0] if isinstance(zone, Tensor) else zone,
                **vkw,
            )
        return kernels.run(  # type: ignore[no-any-return]
            "cell",
            how,
            x=x,
            h=h,
            w_ih=w_ih,
            w_hh=w_hh,
            b_ih=b_ih,
            b_hh=b_hh,
            reset_after=self.reset_after,
        )
