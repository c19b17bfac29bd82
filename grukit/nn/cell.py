"""GRUCell: one GRU step as a module, ``cell(x, h=None) -> h'``.

The equations are in the floor, :mod:`grukit.functional.gru` (``gru_step``, ``gru_cell``, re-exported here);
``grukit.kernels.route.choose`` decides how they run (the fused kernel where it can).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn.modules import module as _nn_module

from .. import _checks, kernels
from ..functional.gru import GateValues, gru_cell, gru_step
from ..kernels import route, torch_step
from . import _driver, _fast

__all__ = ["GRUCell", "GRUCellConfig", "GateValues", "gru_cell", "gru_step"]


@dataclasses.dataclass
class GRUCellConfig:
    """Every constructor argument of :class:`GRUCell` (device excluded); ``grukit.save`` stores it.

    The fields are the arguments of :class:`GRUCell` of the same names; ``dtype`` is a name such as
    ``"float32"``. ``GRUCell.config`` returns one, ``GRUCell.from_config`` builds a cell from one (or from
    its ``dataclasses.asdict`` dictionary).

    Example:
        >>> import grukit
        >>> cfg = grukit.GRUCell(3, 4, reset_after=False).config
        >>> cfg.hidden_size, cfg.reset_after, cfg.dtype
        (4, False, 'float32')
        >>> grukit.GRUCell.from_config(cfg).config == cfg
        True
    """

    input_size: int
    hidden_size: int
    bias: bool = True
    reset_after: bool = True
    backend: str = "auto"
    dtype: str = "float32"


class GRUCell(nn.Module):
    """A single GRU step, ``cell(x, h=None) -> h'``; state_dict interchangeable with ``torch.nn.GRUCell``.

    Parameters: ``weight_ih`` (3H, I), ``weight_hh`` (3H, H) and, with ``bias``, ``bias_ih`` / ``bias_hh``
    (3H,), gate rows stacked r, z, n as in torch. The equations (those of
    :func:`grukit.functional.gru.gru_cell`), for x (B, I) and h (B, H):

    ```text
    z  = σ(W_iz x + b_iz + W_hz h + b_hz)              update gate: the share of the OLD state kept
    r  = σ(W_ir x + b_ir + W_hr h + b_hr)              reset gate
    n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))     reset_after=True  (torch, cuDNN, Keras default)
    n  = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)     reset_after=False (Cho et al. 2014)
    h' = z ⊙ h + (1 − z) ⊙ n
    ```

    Args:
        input_size: I, features of x.
        hidden_size: H, features of the state.
        bias: learn b_ih and b_hh.
        reset_after: where the reset gate acts (the two n equations above); True matches torch.
        device: where the parameters live.
        dtype: the parameters' dtype (torch's default dtype if None); inputs must have the same one.
        backend: "auto" (fused CPU kernel when it supports the call), "fused" (required) or "torch".

    Shapes: x (B, I) or (I,); h (B, H) or (H,), None means zeros; returns (B, H) or (H,).

    Raises:
        TypeError: a size that is not an int.
        ValueError: a size that is not positive, or an unknown ``backend``.

    Example:
        >>> import torch, grukit
        >>> ref = torch.nn.GRUCell(3, 4)
        >>> cell = grukit.GRUCell(3, 4)
        >>> _ = cell.load_state_dict(ref.state_dict())
        >>> x, h = torch.randn(2, 3), torch.randn(2, 4)
        >>> tuple(cell(x, h).shape)
        (2, 4)
        >>> torch.allclose(cell(x, h), ref(x, h), atol=1e-6)
        True
    """

    _step_plan: Any = None  # the streaming step's cached plan (grukit.kernels.stream.StepPlan)
    _qweights: str | None = (
        None  # set by grukit.quantize: "bf16" or "int8" W_ih/W_hh, float32 everything else
    )
    _PARAM_NAMES = (("weight_ih", "weight_hh", "bias_ih", "bias_hh"),)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        reset_after: bool = True,
        device: Any = None,
        dtype: Any = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        # int8 weights (grukit.quantize) across formats: dequantized into float modules, float ones quantized
        self.register_load_state_dict_pre_hook(_fast.load_state_pre_hook)  # type: ignore[no-untyped-call]
        _checks.positive_int("input_size", input_size)
        _checks.positive_int("hidden_size", hidden_size)
        _checks.backend(backend)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.bias, self.reset_after, self.backend = bool(bias), bool(reset_after), backend
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size, **kw))
            self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    @property
    def config(self) -> GRUCellConfig:
        """This cell's :class:`GRUCellConfig` (its constructor arguments, the dtype as a name)."""
        # quantized weights (grukit.quantize) compute in float32 (int8: in the biases' dtype after .double()
        # or .half()): the cell it describes is a float one of that dtype
        dt = _fast.compute_dtype(self) if self._qweights == "int8" else torch.float32
        dt = dt if self._qweights else self.weight_ih.dtype
        dtype = str(dt).replace("torch.", "")
        return GRUCellConfig(
            self.input_size, self.hidden_size, self.bias, self.reset_after, self.backend, dtype
        )

    @classmethod
    def from_config(cls, config: GRUCellConfig | dict[str, Any], device: Any = None) -> GRUCell:
        """A freshly initialised cell built from a :class:`GRUCellConfig` or its ``dataclasses.asdict`` dict."""
        cfg = dataclasses.asdict(config) if isinstance(config, GRUCellConfig) else dict(config)
        dtype = getattr(torch, cfg.pop("dtype", "float32"))
        return cls(**cfg, device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        """Uniform(−1/√H, 1/√H) for every parameter, as torch does."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # The streaming step straight from the call (nn.Module.__call__ adds ~2 µs at batch 1), when the
        # call is one nn.Module.__call__ would pass to this class's forward unchanged: no hooks (the module's
        # or global ones), not compiled with module.compile(), forward not overridden or patched.
        plan = self._step_plan
        if plan is not None and plan._c and not kwargs and len(args) == 2:
            # the same checks (and the no-hook ones below) in C++ (grukit.kernels.torch_step), after the one
            # that must stay here: dynamo reads is_compiling() as a constant and traces nothing after it
            if not _is_compiling():
                c_cell, capsule = plan._c
                out = c_cell(capsule, self, args[0], args[1])
                if out is not None:
                    return out
        if (
            plan is not None
            and not kwargs
            and 0 < len(args) <= 2
            and self._compiled_call_impl is None
            and type(self).forward is _FORWARD
            and not (
                self._forward_pre_hooks
                or self._forward_hooks
                or self._backward_pre_hooks
                or self._backward_hooks
                or _nn_module._global_forward_pre_hooks
                or _nn_module._global_forward_hooks
                or _nn_module._global_backward_pre_hooks
                or _nn_module._global_backward_hooks
                or "forward" in self.__dict__
            )
        ):
            out = plan.cell(self._parameters, args[0], args[1] if len(args) == 2 else None)
            if out is not None:
                return out
        return super().__call__(*args, **kwargs)

    def _apply(self, fn: Any, recurse: bool = True) -> GRUCell:
        route.bump(self)  # .to(), .double(), ...: the parameters' cached checks are stale
        fn = _fast.keep_quantized(self, fn)  # int8 weights and scales keep their dtypes
        out = cast("GRUCell", super()._apply(fn, recurse))  # type: ignore[no-untyped-call]
        _fast.settle_format(self)  # bf16 weights converted to another dtype: an ordinary module now
        return out

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """One GRU step.

        Args:
            x: the input (B, I), or (I,) unbatched.
            h: the state (B, H), or (H,) unbatched; None means zeros.

        Returns:
            The new state h' (B, H), or (H,) unbatched.

        Raises:
            ShapeError: x or h of the wrong rank or size, or a batch size mismatch.
            TypeError: x or h not a floating-point tensor of the parameters' dtype.

        Example:
            >>> import torch, grukit
            >>> cell = grukit.GRUCell(3, 4)
            >>> h = cell(torch.randn(3))  # unbatched, h = 0
            >>> tuple(h.shape)
            (4,)
            >>> tuple(cell(torch.randn(2, 3), torch.zeros(2, 4)).shape)
            (2, 4)
        """
        plan = self._step_plan
        if plan is not None:  # the streaming step: a few cheap checks and one native call
            out = plan.cell(self._parameters, x, h)
            if out is not None:
                return out  # type: ignore[no-any-return]
        return self._forward(x, h)

    def _forward(self, x: Tensor, h: Tensor | None) -> Tensor:
        """The general path (every check; the fused kernel or the composite loop); builds the step plan."""
        # Direct dict reads (nn.Module.__getattr__ costs ~0.5 µs per name); getattr when a name is not a plain
        # registered parameter (parametrizations, weight_norm hooks, bias=False).
        params = self._parameters
        w, w_hh, b_ih, b_hh = (
            params.get(n) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )
        if w is None or w_hh is None or (self.bias and (b_ih is None or b_hh is None)):
            w, w_hh, b_ih, b_hh = self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
        if self._qweights:
            return self._forward_quantized(x, h, (w, w_hh, b_ih, b_hh))
        if self.backend != "torch" and w.dtype == torch.float32:
            out = self._plan_step(x, h, (w, w_hh, b_ih, b_hh))
            if out is not None:
                return out
        if (
            h is not None
            and type(x) is Tensor
            and type(h) is Tensor
            and x.dim() == 2
            and x.dtype == w.dtype
            and h.dtype == w.dtype
            and x.shape[1] == self.input_size
            and h.shape == (x.shape[0], self.hidden_size)
            and w.is_floating_point()
            and not _driver._any_autocast()
        ):
            unbatched = (
                False  # the common batched call: all of _checks.cell_inputs' checks hold, skip it
            )
        else:
            ac = _driver.autocast_device(x) if isinstance(x, Tensor) else None
            if (
                ac is not None
            ):  # autocast: the step runs in the parameters' dtype, as torch.nn.GRUCell
                with torch.autocast(ac, enabled=False):
                    if x.is_floating_point():
                        x = x.to(w.dtype)
                    if isinstance(h, Tensor) and h.is_floating_point():
                        h = h.to(w.dtype)
                    return self.forward(x, h)
            x, h, unbatched = _checks.cell_inputs(
                "GRUCell", x, h, self.input_size, self.hidden_size, w
            )
        how = route.choose(
            route.Spec("cell", self.backend, self.reset_after),
            x,
            module=self,
            weights=(("h", h),),
        ).route
        h_new = kernels.run(
            "cell",
            how,
            x=x,
            h=h,
            w_ih=w,
            w_hh=w_hh,
            b_ih=b_ih,
            b_hh=b_hh,
            reset_after=self.reset_after,
        )
        return h_new.squeeze(0) if unbatched else h_new  # type: ignore[no-any-return]

    def _plan_step(
        self,
        x: Tensor,
        h: Tensor | None,
        weights: tuple[Tensor, Tensor, Tensor | None, Tensor | None],
    ) -> Tensor | None:
        """Build (or rebuild) the step plan for these weights and run it; None when this call is not one it
        takes (the caller then runs its general path)."""
        names: Any = self._PARAM_NAMES
        layers: Any = [weights]
        if self._qweights == "int8":
            names, layers = _fast.with_scales(self, names, layers)
        plan = _fast.build_plan(
            self,
            x,
            h,
            names,
            layers,
            self.input_size,
            self.hidden_size,
            self.reset_after,
        )
        if plan is None:
            return None
        if _USE_C[0]:
            plan.enable_c()
        return plan.cell(self._parameters, x, h)  # type: ignore[no-any-return]

    def _forward_quantized(
        self,
        x: Tensor,
        h: Tensor | None,
        weights: tuple[Tensor, Tensor, Tensor | None, Tensor | None],
    ) -> Tensor:
        """Quantized weights (inference): the streaming step where it runs, else the float32 path on float32
        copies of the weights (bf16 upcast, int8 dequantized)."""
        _fast.refuse_training("GRUCell", self, (x, h))
        if self.backend != "torch":
            out = self._plan_step(x, h, weights)
            if out is not None:
                return out
        return _fast.upcast_call(self, "forward", x, h)  # type: ignore[no-any-return]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if not self.reset_after:
            s += ", reset_after=False"
        return s


_FORWARD = GRUCell.forward
_is_compiling = torch.compiler.is_compiling
#: whether new step plans use the C++ checks (grukit.kernels.torch_step) where they are available; tests
#: switch it off to check the Python path
_USE_C = [True]
torch_step.register_forward(_FORWARD)
