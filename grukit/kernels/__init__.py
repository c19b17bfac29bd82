"""Kernels behind one seam: :mod:`grukit.kernels.route` decides how every GRU computation runs.

Backends a layer can ask for:
    "torch"  the composite path: the floor's time loop, plain differentiable torch ops (any device, any
             dtype, double backward).
    "fused"  the fused CPU kernel (directly in eager mode, through the registered op when a graph is
             being built); raises ValueError saying why when neither can run the call.
    "auto"   whatever :func:`grukit.kernels.route.choose` picks: the fused kernel when it supports the call,
             the registered op ``grukit::gru_sequence`` while a graph is built (compile, export, trace,
             ONNX), under autocast or on another device, torch's own GRU on CUDA and on CPU when the native
             kernel cannot load, else the composite path.

Ops of :func:`dispatch`:
    "sequence"  one direction of one layer over a whole sequence →
                (output (T, B, H), h_n (B, H), gates (z, r, n) each (T, B, H) or None)
    "cell"      one step → h' (B, H)

Modules: ``route`` (the decision), ``fused`` (the native kernel, optional: built into the wheel, or built
at first use when the wheel has none), ``stream`` (its small-batch streaming step, float32, bfloat16 and
int8 weights), ``ops`` (the torch.library registration), ``vf`` (torch's ``torch._VF.gru``), ``onnx_export``,
``export`` (the op ``grukit::gru_sequence_export`` the layer emits under ``torch.export``; its decomposition
is a scan loop in core ATen).
:func:`status` says whether the native kernel loaded, from where, why not, and which CPU paths it runs;
``python -m grukit.kernels`` prints it. This package imports only ``grukit.functional`` (and
``grukit.errors``) below it.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from ..errors import NativeKernelWarning
from ..functional import gru as _composite
from . import export, onnx_export, ops, route, vf

_fused: Any = None
_fused_import_error: str | None = None
_warned = False

__all__ = [
    "dispatch",
    "export",
    "fused_unsupported_reason",
    "native_reason",
    "onnx_export",
    "ops",
    "route",
    "status",
    "vf",
]


def __getattr__(name: str) -> Any:
    """``grukit.kernels.composite`` (the retired re-export of the floor's loop) still resolves, with a warning."""
    if name == "composite":
        warnings.warn(
            "grukit.kernels.composite is deprecated; use grukit.functional.gru (sequence, cell)",
            DeprecationWarning,
            stacklevel=2,
        )
        return _composite
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _disabled() -> bool:
    return os.environ.get("GRUKIT_NO_FUSED", "").strip() not in ("", "0")


def _warn_once(reason: str) -> None:
    """Warn (once per process) that the native kernel is unavailable; silent for ``GRUKIT_NO_FUSED=1``."""
    global _warned
    if _warned or _disabled():
        return
    _warned = True
    warnings.warn(
        f"grukit: {reason}. GRU layers (reset_after=True, outside autocast) run on torch's own ATen GRU "
        "instead, everything else on the slower composite path. To fix it: install a grukit wheel built "
        "for this platform, or make a C++ compiler available (g++/clang++, or $CXX) so grukit builds the "
        "kernel at first use; `python -m grukit.kernels` shows the details. GRUKIT_NO_FUSED=1 turns the "
        "kernel off without this warning.",
        NativeKernelWarning,
        stacklevel=3,
    )


def _load_fused() -> Any:
    """Import the fused backend once; remember why it is unavailable (and warn once) if it cannot be imported."""
    global _fused, _fused_import_error
    if _fused is None and _fused_import_error is None:
        try:
            from . import fused as mod

            _fused = mod
        except Exception as e:  # a missing native build must never break the library
            _fused_import_error = f"the native kernel is unavailable ({type(e).__name__}: {e})"
            _warn_once(_fused_import_error)
    return _fused


def native_reason() -> str | None:
    """None when the native kernel is loaded (loading it on first use), else why it is not."""
    if _fused is not None:
        return None
    _load_fused()
    return _fused_import_error


def fused_unsupported_reason(op: str, **kw: Any) -> str | None:
    """Why the fused backend cannot run this call eagerly, or None if it can."""
    mod = _load_fused()
    if mod is None:
        return _fused_import_error
    reason: str | None = mod.unsupported_reason(op, **kw)
    return reason


def status() -> dict[str, Any]:
    """Whether the native kernel runs here, and how.

    Returns:
        A dict: ``native`` (bool), ``reason`` (why not, or None), ``source`` ("wheel": built into the
        installed package; "jit": built at first use into the cache; None), ``library`` (its path or
        None), ``isa`` (the instruction-set level the loaded library was compiled for, e.g. "x86-64-v4",
        or "generic"), ``cpu`` (the best level this CPU runs), ``stream_paths`` (the streaming step's path
        for float32, bfloat16 and int8 weights), ``openmp`` (whether the library uses OpenMP threads),
        ``torch_step`` (the GRUCell step's C++ checks, :mod:`grukit.kernels.torch_step`: ``{"loaded",
        "building", "error"}``; built in the background from the first streaming ``GRUCell`` call, so not
        loaded before one).

    Example:
        >>> import grukit.kernels
        >>> s = grukit.kernels.status()
        >>> sorted(s)[:4]
        ['cpu', 'isa', 'library', 'native']
        >>> s["native"] == (s["reason"] is None)
        True
    """
    from . import _build

    mod = _load_fused()
    info: dict[str, Any] = {
        "native": mod is not None,
        "reason": _fused_import_error,
        "source": None,
        "library": None,
        "isa": None,
        "cpu": _build.cpu_level(),
        "stream_paths": None,
        "openmp": None,
        "torch_step": None,
    }
    if mod is not None:
        from . import stream, torch_step

        lib = mod._lib
        info.update(
            source=_build.loaded["source"],
            library=_build.loaded["path"],
            isa=_build.loaded["isa"],
            stream_paths={
                "float32": stream.active_path(False),
                "bfloat16": stream.active_path(True),
                "int8": stream.active_path("int8"),
            },
            openmp=bool(lib.grukit_has_openmp()),
            torch_step=torch_step.status(),
        )
    return info


def dispatch(op: str, backend: str = "auto", **kw: Any) -> Any:
    """Run ``op`` ("sequence" or "cell") with the chosen backend; the keyword arguments are the op's inputs.

    "sequence": x (T, B, I), h0 (B, H), w_ih, w_hh, b_ih, b_hh, reset_after, lengths (int64 CPU (B,) or
    None), reverse, return_gates. "cell": x (B, I), h (B, H), w_ih, w_hh, b_ih, b_hh, reset_after. The
    route is :func:`grukit.kernels.route.choose`'s (a single direction has no "aten" or "onnx" route).
    """
    if op not in ("sequence", "cell"):
        raise ValueError(f"op must be 'sequence' or 'cell', got {op!r}")
    if backend not in ("auto", "fused", "torch"):
        raise ValueError(f"backend must be one of ('auto', 'fused', 'torch'), got {backend!r}")
    seq = op == "sequence"
    spec = route.Spec(
        kind="gru" if seq else "cell",
        backend=backend,
        reset_after=bool(kw.get("reset_after", True)),
        onnx_ok=False,
        masked_weights=True,  # one direction: never the whole-stack ATen route
    )
    names = ("h0" if seq else "h", "w_ih", "w_hh", "b_ih", "b_hh")
    d = route.choose(
        spec,
        kw["x"],
        weights=[(n, kw.get(n)) for n in names],
        return_gates=bool(kw.get("return_gates")),
        autocast=route.autocast_of(kw["x"]),
    )
    return run(op, d.route, **kw)


def run(op: str, how: str, **kw: Any) -> Any:
    """Run ``op`` on one of the per-direction routes ("native", "op", "composite"); op "variant" is the
    variant loop ("native": ``grukit.kernels.variants``, else ``grukit.functional.gru.sequence``)."""
    if op == "variant":
        if how == "native":
            from . import variants

            return variants.sequence(**kw)
        return _composite.sequence(**kw)
    if how == "native":
        mod = _fused if _fused is not None else _load_fused()
        return (mod.sequence if op == "sequence" else mod.cell)(**kw)
    if how == "op" and op == "sequence":
        return ops.sequence(**kw)
    if how == "bf16" and op == "sequence":  # issue 32: CPU autocast to bfloat16
        from . import bf16

        return bf16.sequence(**kw)
    return (_composite.sequence if op == "sequence" else _composite.cell)(**kw)
