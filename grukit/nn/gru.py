"""The GRU layer: layers, directions, batch_first, lengths, packed input, h0, streaming and gate output.

The per-step math lives in `cell.py`; every sequence computation goes through `grukit.kernels.dispatch`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .. import _checks
from . import variants


class GRUGates(NamedTuple):
    """Gate activations, each (num_layers, D, T, B, H), time-major; zero past a sequence's length."""

    z: Tensor
    r: Tensor
    n: Tensor


@dataclasses.dataclass
class GRUConfig:
    """Every constructor argument of :class:`GRU` (device excluded); saved with the model."""

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


def _dtype_name(dtype) -> str:
    return str(dtype if dtype is not None else torch.get_default_dtype()).replace("torch.", "")


class GRU(nn.Module):
    """Multi-layer GRU with torch.nn.GRU's shapes, semantics and state_dict (for reset_after=True).

    ``gru(input, hx=None, lengths=None, return_gates=False) -> (output, h_n[, gates])``

    Shapes (D = 2 if bidirectional else 1, L = num_layers):
        input  (T, B, I), (B, T, I) if batch_first, (T, I) unbatched, or a PackedSequence
        hx     (L·D, B, H) or (L·D, H) unbatched; None means zeros
        lengths  (B,) integers in 1..T: outputs past a sequence's end are zero, h_n is the state at its
                 last valid step, and the reverse direction starts at each sequence's own end
        output (T, B, D·H) (batch_first: (B, T, D·H)); a PackedSequence for packed input
        h_n    (L·D, B, H)
        gates  GRUGates(z, r, n), each (L, D, T, B, H) whatever batch_first is

    NaN in the input propagates to the outputs that depend on it; it never raises.

    Variants (see ``grukit.nn.variants``; all off by default, and off they leave the state_dict and the
    fused path exactly as for the plain GRU):
        layer_norm         layer norm of the input and recurrent pre-activations per gate group, with
                           learnable gains ``ln_gain_ih_l{k}`` / ``ln_gain_hh_l{k}`` (3H)
        recurrent_dropout  variational dropout of the state feeding W_hh, one mask per sequence (training)
        zoneout            each unit keeps its previous value with probability p (training); the
                           expectation in eval
        dropconnect        dropout on W_hh, one mask per forward call (training)
    In training, each call (``forward`` or ``step``) draws its own masks.
    """

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
        device=None,
        dtype=None,
        backend: str = "auto",
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        dropconnect: float = 0.0,
    ) -> None:
        super().__init__()
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
                names = [f"weight_ih{sfx}", f"weight_hh{sfx}", None, None]
                setattr(self, names[0], nn.Parameter(torch.empty(3 * H, layer_in, **kw)))
                setattr(self, names[1], nn.Parameter(torch.empty(3 * H, H, **kw)))
                if bias:
                    names[2], names[3] = f"bias_ih{sfx}", f"bias_hh{sfx}"
                    setattr(self, names[2], nn.Parameter(torch.empty(3 * H, **kw)))
                    setattr(self, names[3], nn.Parameter(torch.empty(3 * H, **kw)))
                self._param_names.append(tuple(names))
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
            _dtype_name(self.weight_ih_l0.dtype),
            layer_norm=self.layer_norm,
            recurrent_dropout=self.recurrent_dropout,
            zoneout=self.zoneout,
            dropconnect=self.dropconnect,
        )

    @classmethod
    def from_config(cls, config: GRUConfig | dict, device=None) -> GRU:
        cfg = dataclasses.asdict(config) if isinstance(config, GRUConfig) else dict(config)
        dtype = getattr(torch, cfg.pop("dtype", "float32"))
        return cls(**cfg, device=device, dtype=dtype)

    @classmethod
    def from_torch(cls, module: nn.GRU, backend: str = "auto") -> GRU:
        """A grukit.GRU with the same configuration and weights as a ``torch.nn.GRU``."""
        from ..interop.torch import from_torch

        return from_torch(module, backend=backend)

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

    def _draw_masks(self, T: int, B: int, like: Tensor) -> variants.VariantMasks:
        """The random masks of one layer and direction for one call (training only; None where inactive)."""
        if not self.training:
            return variants.VariantMasks()
        H = self.hidden_size
        return variants.VariantMasks(
            recurrent=variants.dropout_mask((B, H), self.recurrent_dropout, like)
            if self.recurrent_dropout
            else None,
            zoneout=variants.zoneout_mask((T, B, H), self.zoneout, like) if self.zoneout else None,
            dropconnect=variants.dropout_mask((3 * H, H), self.dropconnect, like)
            if self.dropconnect
            else None,
        )

    def _variant_kwargs(self, layer: int, d: int, masks: variants.VariantMasks) -> dict:
        """Keyword arguments of ``variants.sequence`` for one layer and direction."""
        ln_ih, ln_hh = self.layer_norm_gains(layer, d)
        zone = masks.zoneout if self.training else (self.zoneout or None)
        return {"ln_ih": ln_ih, "ln_hh": ln_hh, "recurrent_mask": masks.recurrent, "zoneout": zone}

    def _check_variant_backend(self) -> None:
        if self.backend == "fused" and self._uses_variant_loop():
            raise ValueError(
                "backend='fused' cannot run this call: layer_norm, zoneout and (in training) "
                "recurrent_dropout change the per-step math and run the composite loop; "
                "use backend='auto' or 'torch'"
            )

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
    def forward(self, input, hx: Tensor | None = None, lengths=None, return_gates: bool = False):
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError(
                    "GRU got both a PackedSequence and lengths; a PackedSequence carries its own lengths"
                )
            template = input
            x, lengths = pad_packed_sequence(
                input, batch_first=False
            )  # (T, B, I) in the original order
            batch_first, unbatched = False, False
            if x.shape[-1] != self.input_size:
                raise ValueError(
                    f"GRU expected input of size {self.input_size} in its last dimension, got {x.shape[-1]}"
                )
            _checks.same_dtype("GRU", "input", x, self.weight_ih_l0)
        else:
            x, unbatched = self._check_input(input)
            batch_first = self.batch_first and not unbatched
            if unbatched:
                x = x.unsqueeze(1)
            elif batch_first:
                x = x.transpose(0, 1)
        T, B = x.shape[0], x.shape[1]
        if lengths is not None:
            lengths = _checks.lengths(lengths, B, T)
        h0 = self._check_hx(hx, B, unbatched, x)

        out, h_n, gates = self._run(x, h0, lengths, return_gates)

        if packed:
            # Re-pack in the input's own sorted order so sorted/unsorted indices match the input's.
            order = template.sorted_indices
            out_sorted = out if order is None else out.index_select(1, order)
            lens_sorted = lengths if order is None else lengths.index_select(0, order.cpu())
            data = pack_padded_sequence(out_sorted, lens_sorted, enforce_sorted=True)
            output = PackedSequence(
                data.data, data.batch_sizes, template.sorted_indices, template.unsorted_indices
            )
        elif unbatched:
            output, h_n = out.squeeze(1), h_n.squeeze(1)
        else:
            output = out.transpose(0, 1) if batch_first else out
        if return_gates:
            return output, h_n, gates
        return output, h_n

    def _check_input(self, input) -> tuple[Tensor, bool]:
        x = _checks.tensor("input", input)
        if x.dim() not in (2, 3):
            raise ValueError(
                f"GRU expected input of 3 dimensions ({'B, T' if self.batch_first else 'T, B'}, I) "
                f"or 2 dimensions (T, I) unbatched, got {x.dim()} dimensions"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"GRU expected input of size {self.input_size} in its last dimension, got {x.shape[-1]}"
            )
        _checks.same_dtype("GRU", "input", x, self.weight_ih_l0)
        return x, x.dim() == 2

    def _check_hx(self, hx, B: int, unbatched: bool, x: Tensor) -> Tensor:
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        if hx is None:
            return x.new_zeros(LD, B, H)
        hx = _checks.tensor("hx", hx)
        want = (LD, H) if unbatched else (LD, B, H)
        if tuple(hx.shape) != want:
            raise ValueError(
                f"GRU expected hx of shape {want} (num_layers·D, {'' if unbatched else 'B, '}H), "
                f"got {tuple(hx.shape)}"
            )
        _checks.same_dtype("GRU", "hx", hx, self.weight_ih_l0)
        return hx.unsqueeze(1) if unbatched else hx

    def _run(self, x: Tensor, h0: Tensor, lengths: Tensor | None, return_gates: bool):
        """All layers and directions over time-major x (T, B, I) → (out (T, B, D·H), h_n, gates)."""
        from ..kernels import dispatch

        D = self.num_directions
        variant_loop = self._uses_variant_loop()
        self._check_variant_backend()
        layer_in = x
        h_n: list[Tensor] = []
        gate_layers: list[list[tuple[Tensor, Tensor, Tensor]]] = []
        for layer in range(self.num_layers):
            outs, layer_gates = [], []
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer, d)
                masks = self._draw_masks(x.shape[0], x.shape[1], x)
                if masks.dropconnect is not None:
                    w_hh = w_hh * masks.dropconnect  # one DropConnect mask for the whole call
                kw = dict(
                    x=layer_in,
                    h0=h0[layer * D + d],
                    w_ih=w_ih,
                    w_hh=w_hh,
                    b_ih=b_ih,
                    b_hh=b_hh,
                    reset_after=self.reset_after,
                    lengths=lengths,
                    reverse=d == 1,
                    return_gates=return_gates,
                )
                if variant_loop:
                    out, h, g = variants.sequence(**kw, **self._variant_kwargs(layer, d, masks))
                else:
                    out, h, g = dispatch("sequence", self.backend, **kw)
                outs.append(out)
                h_n.append(h)
                layer_gates.append(g)
            layer_out = outs[0] if D == 1 else torch.cat(outs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_out = F.dropout(layer_out, self.dropout, training=True)
            layer_in = layer_out
            gate_layers.append(layer_gates)
        gates = None
        if return_gates:
            gates = GRUGates(
                *(
                    torch.stack([torch.stack([g[k] for g in lg]) for lg in gate_layers])
                    for k in range(3)
                )
            )
        return layer_in, torch.stack(h_n), gates

    # -------------------------------------------------------------------------------------- streaming
    def step(self, x_t: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One time step for streaming: x_t (B, I) or (I,), h (L, B, H) or (L, H) → (y_t (B, H), h_new).

        Feeding a sequence step by step (or in chunks via ``gru(chunk, h)``) gives the same outputs as one
        call. Unidirectional only: the reverse direction needs the future.
        """
        from ..kernels import dispatch

        if self.bidirectional:
            raise ValueError(
                "GRU.step needs a unidirectional GRU: the reverse direction of a bidirectional "
                "GRU depends on future inputs; run the whole sequence with gru(input) instead"
            )
        x_t = _checks.tensor("x_t", x_t)
        if x_t.dim() not in (1, 2):
            raise ValueError(
                f"GRU.step expected x_t of shape (B, {self.input_size}) or ({self.input_size},), "
                f"got {x_t.dim()} dimensions"
            )
        if x_t.shape[-1] != self.input_size:
            raise ValueError(
                f"GRU expected input of size {self.input_size} in its last dimension, got {x_t.shape[-1]}"
            )
        _checks.same_dtype("GRU", "x_t", x_t, self.weight_ih_l0)
        unbatched = x_t.dim() == 1
        x = x_t.unsqueeze(0) if unbatched else x_t
        h0 = self._check_hx(h, x.shape[0], unbatched, x)
        variant_loop = self._uses_variant_loop()
        self._check_variant_backend()
        new_h = []
        if not variant_loop and not (self.training and (self.dropout or self.dropconnect)):
            # Plain inference-style step (no masks, no dropout): skip the per-layer mask bookkeeping.
            for layer in range(self.num_layers):
                w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer)
                x = dispatch(
                    "cell",
                    self.backend,
                    x=x,
                    h=h0[layer],
                    w_ih=w_ih,
                    w_hh=w_hh,
                    b_ih=b_ih,
                    b_hh=b_hh,
                    reset_after=self.reset_after,
                )
                new_h.append(x)
        for layer in range(0 if not new_h else self.num_layers, self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer)
            masks = self._draw_masks(1, x.shape[0], x)
            if masks.dropconnect is not None:
                w_hh = w_hh * masks.dropconnect
            if variant_loop:
                vkw = self._variant_kwargs(layer, 0, masks)
                zone = vkw.pop("zoneout")
                x = variants.cell(
                    x,
                    h0[layer],
                    w_ih,
                    w_hh,
                    b_ih,
                    b_hh,
                    self.reset_after,
                    zoneout=zone[0] if isinstance(zone, Tensor) else zone,
                    **vkw,
                )
            else:
                x = dispatch(
                    "cell",
                    self.backend,
                    x=x,
                    h=h0[layer],
                    w_ih=w_ih,
                    w_hh=w_hh,
                    b_ih=b_ih,
                    b_hh=b_hh,
                    reset_after=self.reset_after,
                )
            new_h.append(x)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        h_new = torch.stack(new_h)
        if unbatched:
            return new_h[-1].squeeze(0), h_new.squeeze(1)
        return new_h[-1], h_new
