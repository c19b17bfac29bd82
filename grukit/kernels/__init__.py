"""Kernels behind one seam: :func:`dispatch` picks the implementation for every GRU computation.

Backends:
    "torch"  the composite path: the floor's time loop, plain differentiable torch ops (any device, any
             dtype, double backward).
    "fused"  the fused CPU kernel (directly in eager mode, through the registered op when a graph is
             being built); raises ValueError when neither can run the call.
    "auto"   the fused kernel when it supports the call, the registered op ``grukit::gru_sequence`` while
             a graph is built (compile, export, trace, ONNX), under autocast or on another device, else
             the composite path, quietly.

Ops:
    "sequence"  one direction of one layer over a whole sequence →
                (output (T, B, H), h_n (B, H), gates (z, r, n) each (T, B, H) or None)
    "cell"      one step → h' (B, H)

Modules: ``fused`` (the native kernel, optional), ``stream`` (its small-batch streaming step, float32 and
bfloat16 weights, imported on first use by the layers), ``ops`` (the torch.library registration), ``vf`` (the
CUDA route through ``torch._VF.gru``), ``composite`` (the floor's loop), ``export`` (the op
``grukit::gru_sequence_export`` the layer emits under ``torch.export``; its decomposition is a scan loop
in core ATen). This package imports only ``grukit.functional`` below it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd import forward_ad as _fwad

from . import composite, export, onnx_export, ops, vf

_fused: Any = None
_fused_import_error: str | None = None
_is_tracing = torch._C._is_tracing
_dispatch_depth = getattr(torch._C, "_len_torch_dispatch_stack", lambda: 0)
_functorch_level = getattr(torch._C._functorch, "maybe_current_level", lambda: None)
_any_autocast = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)

__all__ = [
    "composite",
    "dispatch",
    "export",
    "fused_unsupported_reason",
    "onnx_export",
    "ops",
    "vf",
]


def _load_fused() -> Any:
    """Import the fused backend once; remember why it is unavailable if it cannot be imported."""
    global _fused, _fused_import_error
    if _fused is None and _fused_import_error is None:
        try:
            from . import fused as mod

            _fused = mod
        except Exception as e:  # a missing native build must never break the library
            _fused_import_error = f"the fused kernel is unavailable ({type(e).__name__}: {e})"
    return _fused


def fused_unsupported_reason(op: str, **kw: Any) -> str | None:
    """Why the fused backend cannot run this call eagerly, or None if it can."""
    mod = _load_fused()
    if mod is None:
        return _fused_import_error
    reason: str | None = mod.unsupported_reason(op, **kw)
    return reason


def _op_runs(kw: dict[str, Any]) -> bool:
    """Whether the registered op should run this "sequence" call (the eager fused kernel cannot)."""
    if kw.get("return_gates") or _fwad._current_level >= 0 or _functorch_level() is not None:
        return False  # gates are the composite loop's; the op has no jvp and no vmap rule
    x = kw["x"]
    return bool(
        torch.compiler.is_compiling()
        or _is_tracing()
        or torch.onnx.is_in_onnx_export()
        or _dispatch_depth()
        or type(x) is not torch.Tensor
        or (_any_autocast() and torch.is_autocast_enabled(x.device.type))
        or x.device.type != "cpu"
    )


def dispatch(op: str, backend: str = "auto", **kw: Any) -> Any:
    """Run ``op`` ("sequence" or "cell") with the chosen backend; the keyword arguments are the op's inputs.

    "sequence": x (T, B, I), h0 (B, H), w_ih, w_hh, b_ih, b_hh, reset_after, lengths (int64 CPU (B,) or
    None), reverse, return_gates. "cell": x (B, I), h (B, H), w_ih, w_hh, b_ih, b_hh, reset_after.
    """
    if op not in ("sequence", "cell"):
        raise ValueError(f"op must be 'sequence' or 'cell', got {op!r}")
    if backend == "torch":
        return getattr(composite, op)(**kw)
    if backend not in ("auto", "fused"):
        raise ValueError(f"backend must be one of ('auto', 'fused', 'torch'), got {backend!r}")
    if torch.compiler.is_compiling():  # torch.compile / torch.export: the op, or the loop for gates
        if op == "sequence" and not kw.get("return_gates"):
            return ops.sequence(**kw)
        return getattr(composite, op)(**kw)
    mod = _fused if _fused is not None else _load_fused()
    reason = _fused_import_error if mod is None else mod.unsupported_reason(op, **kw)
    if reason is None:
        return (mod.cell if op == "cell" else mod.sequence)(**kw)
    if op == "sequence" and _op_runs(kw):
        return ops.sequence(**kw)
    if backend == "fused":
        raise ValueError(f"backend='fused' cannot run this call: {reason}")
    return getattr(composite, op)(**kw)
