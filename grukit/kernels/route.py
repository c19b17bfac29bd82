"""The one place that decides how a recurrent call runs: :func:`choose` → :class:`Decision` (route, reason).

Every layer asks it (``GRU.forward``/``GRU.step``, ``GRUCell``, ``MinGRU``, ``grukit.nn.Streamer``) with its
configuration (a :class:`Spec`), the input and the context it reads itself: grad mode, autocast, graph
capture (torch.compile/torch.export, TorchScript tracing, ONNX export, dispatch modes), forward-mode AD and
torch.func transforms, device, dtype and whether the native kernel loaded. ``backend="fused"`` raises
``ValueError`` with the decision's reason whenever the route is not a native one.

Routes:
    "native"     the fused CPU kernel, eagerly (``grukit.kernels.fused``).
    "bf16"       the fused CPU kernel with its input projection and gradient GEMMs in bfloat16 (float32
                 accumulation and outputs; ``grukit.kernels.bf16``): a reset_after=True GRU under CPU
                 autocast to bfloat16 on a CPU with AVX-512-BF16 (reset_after=False stays float32).
    "op"         the registered op ``grukit::gru_sequence`` (graphs, autocast, other devices): its
                 CPU implementation uses the fused kernel when it can, the composite loop otherwise.
    "aten"       torch's own GRU (``torch._VF.gru``: cuDNN on CUDA, ATen's native GRU on CPU) for a whole
                 reset_after=True stack: on CUDA, and on CPU when the native kernel cannot load (outside
                 autocast) so that grukit is never slower than the ``torch.nn.GRU`` it replaces.
    "onnx"       one ONNX GRU node per layer (the dynamo ONNX exporter).
    "export"     ``torch.export`` (not the ONNX exporter): the op ``grukit::gru_sequence_export``, whose
                 decomposition is a scan loop in core ATen (eval-mode variants included).
    "composite"  the floor's time loop in plain torch ops (any device or dtype, differentiable to any order).
    "variant"    the composite loop with the per-step variants (layer_norm, zoneout, recurrent dropout);
                 eager float32/float64 CPU GRU calls without gates run them natively instead ("native",
                 ``grukit.kernels.variants``).
    "scan"       MinGRU's own parallel scans (plain torch ops).

The module-dependent part of a decision (the weights' eligibility) is cached per module, keyed on the
parameters' identities and a generation bumped by ``Module._apply`` (``.to``, ``.double()``, ...), so an
eager call checks only the context and its input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.autograd import forward_ad as _fwad

from . import export, onnx_export, vf

ROUTES = ("native", "bf16", "op", "aten", "onnx", "export", "composite", "variant", "scan")

_FLOATS = (torch.float32, torch.float64)
_STRIDED = torch.strided
_PLAIN = (Tensor, torch.nn.Parameter)
_functorch_level = getattr(torch._C._functorch, "maybe_current_level", lambda: None)
_dispatch_depth = getattr(torch._C, "_len_torch_dispatch_stack", lambda: 0)
_is_tracing = torch._C._is_tracing
_any_autocast = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)
try:  # what torch.onnx.is_in_onnx_export() reads, without its two imports per call
    from torch.onnx._internal.exporter import _flags as _onnx_flags
    from torch.onnx._internal.torchscript_exporter._globals import GLOBALS as _onnx_globals

    def in_onnx_export() -> bool:
        """Whether an ONNX export (either exporter) is running."""
        return bool(_onnx_globals.in_onnx_export or _onnx_flags._is_onnx_exporting)
except Exception:  # another torch layout: the public (slower) function
    in_onnx_export = torch.onnx.is_in_onnx_export


class Decision(NamedTuple):
    """A route (one of :data:`ROUTES`) and the reason it was chosen (why not native, or "")."""

    route: str
    reason: str


class Spec(NamedTuple):
    """What a decision needs from a layer's configuration (built by the layer for one call).

    Attributes:
        kind: "gru" (a GRU stack), "cell" (one step: GRUCell, GRU.step, Streamer) or "mingru".
        backend: "auto", "fused" or "torch".
        reset_after: where the reset gate applies (torch.nn.GRU's and ATen's is True).
        variant: the per-step math differs from the plain GRU (layer_norm, zoneout, training recurrent
            dropout): the native variant loop or the composite variant loop runs it.
        onnx_ok: the dynamo ONNX exporter can emit ONNX GRU nodes for it (no layer_norm, no zoneout).
        masked_weights: W_hh is masked per call (training DropConnect): torch's ATen GRU cannot take it.
        masks: random regularizer masks are drawn in this call (training with DropConnect, recurrent
            dropout or zoneout): the export op has no randomness, so torch.export keeps the loops.
    """

    kind: str = "gru"
    backend: str = "auto"
    reset_after: bool = True
    variant: bool = False
    onnx_ok: bool = True
    masked_weights: bool = False
    masks: bool = False


_kernels: Any = None


def native_reason() -> str | None:
    """None when the native kernel is loaded, else why not (loads it on first use; see ``grukit.kernels``)."""
    global _kernels
    if _kernels is None:
        import grukit.kernels as _kernels
    if _kernels._fused is not None:
        return None
    return _kernels.native_reason()  # type: ignore[no-any-return]


def graph_reason() -> str | None:
    """Why this call is being captured rather than run eagerly (compile, export, tracing, dispatch mode), or None."""
    if torch.compiler.is_compiling():
        return "torch.compile/torch.export is tracing the model"
    if torch.jit.is_scripting() or _is_tracing():  # type: ignore[attr-defined, unused-ignore]
        return "TorchScript is tracing/scripting the model"
    if in_onnx_export():
        return "an ONNX export is running"
    if _dispatch_depth():
        return "a TorchDispatchMode is active"
    return None


def transform_reason() -> str | None:
    """Why a transform the op has no rule for is active (forward-mode AD, torch.func), or None."""
    if _fwad._current_level >= 0:
        return "forward-mode AD is active (the fused kernel has no jvp)"
    if _functorch_level() is not None:
        return "a torch.func transform (vmap/grad/...) is active"
    return None


def tensor_reason(dtype: torch.dtype, tensors: Sequence[tuple[str, Tensor | None]]) -> str | None:
    """Why the fused kernel cannot read these tensors (all plain strided CPU tensors of ``dtype``), or None."""
    if dtype not in _FLOATS:
        return f"dtype {dtype} (the fused kernel supports float32 and float64)"
    for name, t in tensors:
        if t is None:
            continue
        if type(t) not in _PLAIN:
            return f"{name} is a {type(t).__name__}, not a plain tensor"
        if not t.is_cpu:
            return f"{name} is on {t.device}; the fused kernel runs on CPU"
        if t.dtype != dtype:
            return f"{name} has dtype {t.dtype}, x has {dtype}"
        if t.layout != _STRIDED:
            return f"{name} is not a strided tensor ({t.layout})"
    return None


def autocast_of(x: Tensor) -> str | None:
    """The device type of ``x`` if an autocast region is active for it, else None (cheap when none is)."""
    if not _any_autocast():
        return None
    dev = x.device.type
    return dev if torch.is_autocast_enabled(dev) else None


def weights_reason(module: Any, dtype: torch.dtype) -> str | None:
    """:func:`tensor_reason` for a module's own parameters, cached per module (see the module docstring)."""
    d = module.__dict__  # direct reads: nn.Module.__getattr__ is slow for a missing name
    key = (dtype, d.get("_route_generation", 0), *map(id, d["_parameters"].values()))
    cache = d.get("_route_weights")
    if cache is not None and cache[0] == key:
        return cache[1]  # type: ignore[no-any-return]
    reason = tensor_reason(dtype, list(module._parameters.items()))
    d["_route_weights"] = (key, reason)
    return reason


def bump(module: Any) -> None:
    """Invalidate ``module``'s cached decision parts (its parameters may have changed dtype or device)."""
    module.__dict__["_route_generation"] = module.__dict__.get("_route_generation", 0) + 1


def _aten_ok(spec: Spec, return_gates: bool) -> bool:
    """Whether torch's own GRU computes this call (a whole plain reset_after=True stack, no gates)."""
    return (
        spec.kind == "gru"
        and spec.reset_after
        and spec.backend == "auto"
        and not spec.variant
        and not spec.masked_weights
        and not return_gates
    )


def choose(
    spec: Spec,
    x: Tensor,
    *,
    module: Any = None,
    weights: Sequence[tuple[str, Tensor | None]] = (),
    return_gates: bool = False,
    needs_grad: bool | None = None,
    autocast: str | None = None,
) -> Decision:
    """Decide how one call runs.

    Args:
        spec: the layer's configuration for this call.
        x: the input as the recurrence sees it ((T, B, I) for "gru", (B, I) for "cell").
        module: the layer whose parameters are the weights (their check is cached on it), or None.
        weights: (name, tensor) pairs to check instead when there is no module (or in addition to it).
        return_gates: the call returns the gate activations.
        needs_grad: whether autograd records the call (None: worked out from grad mode and requires_grad).
        autocast: the device type whose autocast region the call was made in (the layer turns it off inside).

    Returns:
        A :class:`Decision`; its reason says why the call is not native ("" when it is).

    Raises:
        ValueError: ``spec.backend == "fused"`` and the route is not native (the reason is in the message).

    Example:
        >>> import torch
        >>> from grukit.kernels import route
        >>> route.choose(route.Spec(backend="torch"), torch.zeros(3, 1, 2))
        Decision(route='composite', reason="backend='torch'")
    """
    d = _choose(spec, x, module, weights, return_gates, needs_grad, autocast)
    if spec.backend == "fused" and not (
        d.route in ("native", "op") or (d.route == "export" and not spec.variant)
    ):
        raise ValueError(f"backend='fused' cannot run this call: {d.reason}")
    return d


def _choose(
    spec: Spec,
    x: Tensor,
    module: Any,
    weights: Sequence[tuple[str, Tensor | None]],
    return_gates: bool,
    needs_grad: bool | None,
    autocast: str | None,
) -> Decision:
    if spec.kind == "mingru":
        return Decision("scan", "minGRU runs its own scans in torch ops (no native kernel)")
    if spec.kind == "gru" and not return_gates and not spec.masks and export.in_torch_export():
        return Decision("export", "torch.export is tracing the model (the scan-loop export op)")
    if spec.backend == "torch":
        return Decision("variant" if spec.variant else "composite", "backend='torch'")
    if (
        spec.kind == "gru"
        and spec.onnx_ok
        and not return_gates
        and torch.compiler.is_compiling()  # the dynamo exporter traces with torch.export
        and onnx_export.in_dynamo_export()
    ):
        return Decision("onnx", "the dynamo ONNX exporter is running (ONNX GRU nodes)")
    if spec.variant:
        return _variant(spec, x, module, weights, return_gates, autocast)
    graph = graph_reason() or (None if type(x) is Tensor else f"x is a {type(x).__name__}")
    if graph is not None:
        if spec.kind == "gru" and not return_gates and transform_reason() is None:
            return Decision("op", graph)
        if return_gates:
            return Decision("composite", f"{graph}; the gates are the composite loop's")
        return Decision("composite", graph)
    why = transform_reason()
    if why is not None:
        return Decision("composite", why)
    dev = x.device.type
    if dev != "cpu":
        if dev == "cuda" and _aten_ok(spec, return_gates):
            return Decision("aten", f"x is on {x.device}: torch's own GRU (cuDNN)")
        if spec.kind == "gru" and not return_gates:
            return Decision("op", f"x is on {x.device}; the fused kernel runs on CPU")
        return Decision("composite", f"x is on {x.device}; the fused kernel runs on CPU")
    if vf.force_on_cpu and _aten_ok(spec, return_gates):
        return Decision("aten", "grukit.kernels.vf.force_on_cpu is set")
    if autocast is not None and spec.kind == "gru" and not return_gates:
        # --- issue 32: bf16 GEMMs under CPU autocast to bfloat16 (grukit.kernels.bf16)
        if autocast == "cpu" and spec.reset_after and bf16_reason(x, module, weights) is None:
            return Decision("bf16", "CPU autocast to bfloat16: bf16 GEMMs, float32 recurrence")
        # ---
        return Decision("op", f"an autocast region ({autocast}) is active")
    missing = native_reason()
    if missing is not None:
        if _aten_ok(spec, return_gates) and autocast is None and x.dtype in _FLOATS:
            return Decision("aten", f"{missing}: torch's own ATen GRU runs instead")
        return Decision("composite", missing)
    if 0 in x.shape[:-1]:
        return Decision("composite", f"x of shape {tuple(x.shape)} is empty")
    reason = tensor_reason(x.dtype, (("x", x), *weights))
    if reason is None and module is not None:
        reason = weights_reason(module, x.dtype)
    if reason is not None:
        return Decision("composite", reason)
    if return_gates:
        grad = needs_grad if needs_grad is not None else _needs_grad(x, module, weights)
        if grad:
            return Decision(
                "composite",
                "return_gates with autograd (the gates must be differentiable: composite path)",
            )
    return Decision("native", "")


def _variant(
    spec: Spec,
    x: Tensor,
    module: Any,
    weights: Sequence[tuple[str, Tensor | None]],
    return_gates: bool,
    autocast: str | None,
) -> Decision:
    """The variants (layer_norm, zoneout, training recurrent_dropout): "native" (``grukit.kernels.variants``,
    the native variant loop) for an eager float32/float64 CPU GRU call without gates, else "variant" (the
    composite variant loop) with the reason."""
    why: str | None
    if spec.kind != "gru":
        why = (
            "one step (GRUCell, GRU.step, Streamer) with a variant runs the composite variant loop"
        )
    elif return_gates:
        why = "return_gates with a variant: the gates are the composite variant loop's"
    else:
        why = (
            graph_reason()
            or (None if type(x) is Tensor else f"x is a {type(x).__name__}")
            or transform_reason()
        )
        if why is None and x.device.type != "cpu":
            why = f"x is on {x.device}; the native variant kernel runs on CPU"
        if why is None and autocast is not None:
            why = f"an autocast region ({autocast}) is active"
        if why is None:
            why = native_reason()
        if why is None and 0 in x.shape[:-1]:
            why = f"x of shape {tuple(x.shape)} is empty"
        if why is None:
            why = tensor_reason(x.dtype, (("x", x), *weights))
        if why is None and module is not None:
            why = weights_reason(module, x.dtype)
    return Decision("native", "") if why is None else Decision("variant", why)


_bf16: Any = None


def bf16_reason(x: Tensor, module: Any, weights: Sequence[tuple[str, Tensor | None]]) -> str | None:
    """Why a GRU call under CPU autocast cannot take the "bf16" route, or None (issue 32)."""
    global _bf16
    if torch.get_autocast_dtype("cpu") != torch.bfloat16:
        return "CPU autocast to a dtype other than bfloat16 (float16 runs the float32 kernel)"
    if native_reason() is not None or 0 in x.shape[:-1]:
        return "the native kernel is not loaded, or the input is empty"
    if _bf16 is None:
        from . import bf16 as _bf16
    if not _bf16.enabled():
        return "GRUKIT_BF16_AUTOCAST=0"
    if not _bf16.available():
        return "this CPU has no AVX-512-BF16"
    reason = tensor_reason(torch.float32, (("x", x), *weights))
    if reason is None and module is not None:
        reason = weights_reason(module, torch.float32)
    return reason


def _needs_grad(x: Tensor, module: Any, weights: Sequence[tuple[str, Tensor | None]]) -> bool:
    if not torch.is_grad_enabled():
        return False
    if x.requires_grad or any(t is not None and t.requires_grad for _, t in weights):
        return True
    return module is not None and any(p.requires_grad for p in module._parameters.values())
