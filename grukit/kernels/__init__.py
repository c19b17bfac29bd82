"""Kernels behind one seam: :func:`dispatch` picks the implementation for every GRU computation.

Backends:
    "torch"  the composite path: plain differentiable torch ops (any device, any dtype, double backward).
    "fused"  the fused CPU kernel; raises ValueError when it cannot run the call.
    "auto"   the fused kernel when it supports the call, else the composite path, quietly.

Ops:
    "sequence"  one direction of one layer over a whole sequence →
                (output (T, B, H), h_n (B, H), gates (z, r, n) each (T, B, H) or None)
    "cell"      one step → h' (B, H)
"""

from __future__ import annotations

from . import composite

_fused = None
_fused_import_error: str | None = None


def _load_fused():
    """Import the fused backend once; remember why it is unavailable if it cannot be imported."""
    global _fused, _fused_import_error
    if _fused is None and _fused_import_error is None:
        try:
            from . import fused as mod

            _fused = mod
        except Exception as e:  # a missing native build must never break the library
            _fused_import_error = f"the fused kernel is unavailable ({type(e).__name__}: {e})"
    return _fused


def fused_unsupported_reason(op: str, **kw) -> str | None:
    """Why the fused backend cannot run this call, or None if it can."""
    mod = _load_fused()
    if mod is None:
        return _fused_import_error
    return mod.unsupported_reason(op, **kw)


def dispatch(op: str, backend: str = "auto", **kw):
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
    mod = _fused if _fused is not None else _load_fused()
    reason = _fused_import_error if mod is None else mod.unsupported_reason(op, **kw)
    if reason is None:
        return (mod.cell if op == "cell" else mod.sequence)(**kw)
    if backend == "fused":
        raise ValueError(f"backend='fused' cannot run this call: {reason}")
    return getattr(composite, op)(**kw)
