"""The small-batch streaming step (``csrc/gru_stream.cpp``): float32 or bfloat16 weights, float32 state.

A :class:`StepPlan` holds what one native step needs for a stack of layers (the weights' pointers, sizes,
the kernel path) and the key it was built for: each weight's identity, ``_version`` and ``data_ptr``. A
plan is reused while the key holds (inference tensors have no ``_version``: only their identity and
pointer are checked); an in-place change of a weight (``_version``), a replaced tensor
(``.data = ...``: ``data_ptr``), a replaced parameter (identity), ``.to(dtype/device)`` all invalidate it,
and the caller rebuilds it on its slow path. The weights are read in place (nothing is packed), so
even a change the key cannot see (writing through ``p.data``) is read by the next step.

Per call, :meth:`StepPlan.run` checks only cheap things (:func:`eager_ok`: no graph capture, no tracing,
no export, no dispatch mode, no torch.func transform, no forward-mode AD, no autocast; no autograd needed;
x and h plain contiguous CPU float32 tensors of the right shapes; for a stack, B ≤ :data:`max_batch`
with float32 weights) and returns None when one fails, so the caller runs its general path. A
``GRUCell`` plan with float32 weights runs a batch above :data:`max_batch` through the fused kernel's BLAS
cell step instead (the general path's native call, without its per-call checks). Each call returns
freshly allocated tensors.

Paths (:func:`set_path` forces one, e.g. to test a fallback; ``GRUKIT_STEP_PATHS="bf16-avx512"`` at
import): ``"f32-avx512"``, ``"f32-generic"``, ``"bf16-dpbf16"`` (AVX-512-BF16 dot products; the float32
input is split into two bf16 numbers, so only the weights are rounded), ``"bf16-avx512"`` (bf16 → float32
by shifts, float32 FMAs), ``"bf16-generic"``; for int8 weights (``csrc/gru_int8.cpp``, per-row float32
scales in the owner's buffers ``<weight name>_scale``; each input vector rounded to an 8-bit magnitude and
its sign per step) ``"int8-vnni"`` (AVX-512-VNNI ``vpdpbusd``) and ``"int8-generic"``: both give the same
bits. The default is the fastest this CPU runs.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.autograd import forward_ad as _fwad

from . import fused, route, torch_step

__all__ = ["INT8_PATHS", "PATHS", "StepPlan", "active_path", "eager_ok", "max_batch", "set_path"]

_lib = fused._lib
_cell_f32 = _lib.grukit_cell_f32
_calls = (
    fused.calls
)  # counted like the other native calls: "cell" (GRUCell steps), "step" (GRU.step)
#: kernel path names → the native codes
PATHS = {
    "f32-avx512": 0,
    "f32-generic": 1,
    "bf16-dpbf16": 2,
    "bf16-avx512": 3,
    "bf16-generic": 4,
}
_NAMES = {v: k for k, v in PATHS.items()}
#: int8-weight path names → their native codes (csrc/gru_int8.cpp numbers its own paths)
INT8_PATHS = {"int8-vnni": 0, "int8-generic": 1}
_INT8_NAMES = {v: k for k, v in INT8_PATHS.items()}
_INT8 = "int8"
#: float32 weights: batches up to this size run the streaming step (larger ones the BLAS cell)
max_batch: int = 4

_F32, _BF16, _I8, _STRIDED = torch.float32, torch.bfloat16, torch.int8, torch.strided
_active: dict[bool | str, int] = {
    False: int(_lib.grukit_step_best_path(0)),
    True: int(_lib.grukit_step_best_path(1)),
    _INT8: int(_lib.grukit_step_i8_best_path()),
}
_generation = [0]  # bumped by set_path: plans built before are rebuilt


def _bump() -> None:
    """Make every plan built so far rebuild on its next call (the C++ checks have just loaded)."""
    _generation[0] += 1


torch_step.add_ready_hook(_bump)


def _use_library(lib: ctypes.CDLL) -> None:
    """Rebind to another build of the kernel library (``grukit.kernels.fused.use_library``)."""
    global _lib, _cell_f32
    _lib, _cell_f32 = lib, lib.grukit_cell_f32
    _active.update(
        {
            False: int(lib.grukit_step_best_path(0)),
            True: int(lib.grukit_step_best_path(1)),
            _INT8: int(lib.grukit_step_i8_best_path()),
        }
    )
    _generation[0] += 1


def set_path(name: str) -> str:
    """Force a kernel path (``"auto"``-suffixed names reset: ``"f32-auto"``, ``"bf16-auto"``,
    ``"int8-auto"``); returns it.

    Raises:
        ValueError: an unknown name, or a path this CPU cannot run.
    """
    kind, _, which = name.partition("-")
    known = sorted([*PATHS, *INT8_PATHS])
    if kind not in ("f32", "bf16", _INT8) or not which:
        raise ValueError(
            f"expected a path of {known} or 'f32-auto'/'bf16-auto'/'int8-auto', got {name!r}"
        )
    if kind == _INT8:
        if which == "auto":
            code = int(_lib.grukit_step_i8_best_path())
        elif name not in INT8_PATHS:
            raise ValueError(
                f"expected a path of {known} or 'f32-auto'/'bf16-auto'/'int8-auto', got {name!r}"
            )
        else:
            code = INT8_PATHS[name]
            if not _lib.grukit_step_i8_path_ok(code):
                raise ValueError(f"this CPU cannot run the {name} path")
        _active[_INT8] = code
        _generation[0] += 1
        return _INT8_NAMES[code]
    bf16 = kind == "bf16"
    if which == "auto":
        code = int(_lib.grukit_step_best_path(int(bf16)))
    else:
        if name not in PATHS:
            raise ValueError(
                f"expected a path of {known} or 'f32-auto'/'bf16-auto'/'int8-auto', got {name!r}"
            )
        code = PATHS[name]
        if not _lib.grukit_step_path_ok(code):
            raise ValueError(f"this CPU cannot run the {name} path")
    _active[bf16] = code
    _generation[0] += 1
    return _NAMES[code]


def active_path(kind: bool | str) -> str:
    """The path that float32 (``False``), bfloat16 (``True``) or int8 (``"int8"``) weights run now."""
    if kind == _INT8:
        return _INT8_NAMES[_active[_INT8]]
    return _NAMES[_active[bool(kind)]]


for _name in os.environ.get("GRUKIT_STEP_PATHS", "").replace(",", " ").split():
    set_path(_name)

_is_compiling = torch.compiler.is_compiling
_is_tracing = torch._C._is_tracing
_dispatch_depth = fused._dispatch_depth
_functorch_level = fused._functorch_level
_any_autocast = fused._any_autocast
_in_onnx_export = fused._in_onnx_export
_grad_enabled = torch.is_grad_enabled
_empty_like = torch.empty_like


def eager_ok() -> bool:
    """Whether nothing is capturing or transforming this call (then a raw native step is safe)."""
    return not (
        _is_compiling()  # first: dynamo reads it as a constant and traces nothing after it
        or _is_tracing()
        or _any_autocast()
        or _dispatch_depth()
        or _fwad._current_level >= 0
        or _functorch_level() is not None
        or _in_onnx_export()
    )


class _Desc(ctypes.Structure):
    _fields_ = [
        ("L", ctypes.c_int32),
        ("I", ctypes.c_int32),
        ("H", ctypes.c_int32),
        ("path", ctypes.c_int32),
        ("reset_after", ctypes.c_int32),
        ("params", ctypes.c_void_p),
    ]


def _no_plan() -> None:
    return None


#: (w_ih, w_hh, b_ih, b_hh), and for int8 weights their per-row scales (s_ih, s_hh) after those
Layer = tuple["Tensor | None", ...]


def _kind(w: Tensor) -> bool | str:
    return _INT8 if w.dtype == _I8 else w.dtype == _BF16


def plan_reason(layers: Sequence[Layer], input_size: int, hidden_size: int) -> str | None:
    """Why these layers' weights cannot run the streaming step, or None."""
    w0 = layers[0][0]
    assert w0 is not None
    kind = _kind(w0)
    wdt = _I8 if kind == _INT8 else (_BF16 if kind else _F32)
    H = hidden_size
    for k, lw in enumerate(layers):
        w_ih, w_hh, b_ih, b_hh = lw[:4]
        K = input_size if k == 0 else H
        for t, shape, dt in ((w_ih, (3 * H, K), wdt), (w_hh, (3 * H, H), wdt)):
            if t is None or type(t) not in route._PLAIN or t.dtype != dt or not t.is_cpu:
                got = "None" if t is None else f"{t.dtype} on {t.device}"
                return f"layer {k}: weights must be CPU {wdt} tensors, got {got}"
            if tuple(t.shape) != shape or not t.is_contiguous():
                return f"layer {k}: a weight of shape {tuple(t.shape)}, expected contiguous {shape}"
        extra = lw[4:] if kind == _INT8 else ()
        if kind == _INT8:
            if len(extra) != 2 or any(s is None for s in extra):
                return f"layer {k}: int8 weights need their per-row scales"
            if max(input_size, H) > int(_lib.grukit_step_i8_max_k()):
                return f"sizes above {int(_lib.grukit_step_i8_max_k())} (int32 sums)"
        for b in (b_ih, b_hh, *extra):
            if b is not None and (
                type(b) not in route._PLAIN
                or b.dtype != _F32
                or not b.is_cpu
                or tuple(b.shape) != (3 * H,)
                or not b.is_contiguous()
            ):
                return f"layer {k}: biases and scales must be contiguous CPU float32 (3H,) tensors"
    return None


class StepPlan:
    """One native step for a stack of layers, valid while its weights' key holds (see the module doc).

    Args:
        params: the owner's ``_parameters`` dict (its entries are compared by identity at every call), or
            None for a plan without a key (the Streamer's: it reads the tensors it was given).
        names: per layer, the four parameter names (w_ih, w_hh, b_ih, b_hh; None for an absent bias), and for
            int8 weights the names of their two scale buffers after them.
        layers: per layer, the tensors those names hold now.
        input_size, hidden_size: I and H.
        reset_after: where the reset gate acts.
        buffers: the owner's ``_buffers`` dict (int8 weights: the scales are compared as the parameters are).
    """

    __slots__ = (
        "H",
        "I",
        "L",
        "_bkey",
        "_bufs",
        "_c",
        "_desc",
        "_fn",
        "_gen",
        "_key",
        "_ptrs",
        "_ref",
        "_tensors",
        "_xshape",
        "_ylast",
        "_ytmpl",
        "bf16",
        "kind",
        "max_b",
    )

    def __init__(
        self,
        params: dict[str, Tensor | None] | None,
        names: Sequence[tuple[str | None, ...]],
        layers: Sequence[Layer],
        input_size: int,
        hidden_size: int,
        reset_after: bool,
        buffers: dict[str, Tensor | None] | None = None,
    ) -> None:
        w0 = layers[0][0]
        assert w0 is not None
        self.kind = _kind(w0)
        int8 = self.kind == _INT8
        self.bf16 = self.kind is True
        self.L, self.I, self.H = len(layers), int(input_size), int(hidden_size)
        self.max_b = max_batch if self.kind is False else 1 << 30
        key: list[tuple[str, Tensor, int, int]] = []
        bkey: list[tuple[str, Tensor, int, int]] = []
        ptrs: list[int | None] = []
        self._tensors: list[Tensor] = []
        self._bufs = buffers if buffers is not None else {}
        for nm, lw in zip(names, layers):
            # the native order: w_ih, w_hh, b_ih, b_hh; int8: w_ih, w_hh, s_ih, s_hh, b_ih, b_hh
            order = (0, 1, 4, 5, 2, 3) if int8 else (0, 1, 2, 3)
            for i in order:
                n, t = nm[i], lw[i]
                ptrs.append(None if t is None else t.data_ptr())
                if t is not None:
                    self._tensors.append(t)
                    if params is not None:
                        src = params if i < 4 else self._bufs
                        assert n is not None and src.get(n) is t
                        # inference tensors have no version counter: -1, their data pointer is checked
                        v = -1 if t.is_inference() else t._version
                        (key if i < 4 else bkey).append((n, t, v, t.data_ptr()))
        self._key = tuple(key)
        self._bkey = tuple(bkey)
        self._ptrs = (ctypes.c_void_p * len(ptrs))(*ptrs)
        self._gen = _generation[0]
        self._desc = _Desc(
            self.L,
            self.I,
            self.H,
            _active[self.kind],
            int(bool(reset_after)),
            ctypes.cast(self._ptrs, ctypes.c_void_p),
        )
        self._ref = ctypes.byref(self._desc)
        self._fn = _lib.grukit_step_i8 if int8 else _lib.grukit_step
        self._ytmpl: dict[int, Tensor] = {}
        self._ylast = self._y_template(1)  # the output template of the last batch size
        self._xshape = torch.Size((1, self.I))  # x's shape at the last call (the template's batch)
        # (torch_step.cell, this plan's capsule): see enable_c; None: not tried yet, False: not used
        self._c: tuple[Any, Any] | bool | None = None

    def enable_c(self) -> bool:
        """Let ``GRUCell.__call__`` run this plan through the C++ checks of :mod:`grukit.kernels.torch_step`
        (the extension is built in the background on first use: until it has loaded this plan runs the
        Python checks, then it is rebuilt); False where it is unavailable or the plan has no key (the
        Streamer's). Tried once per plan."""
        if self._c is not None:
            return bool(self._c)
        mod = torch_step.load(wait=False) if self._key else None
        if mod is None:
            if not torch_step.building():  # building: _bump (below) makes this plan ask again
                self._c = False
            return False
        d = self._desc
        self._c = (
            mod.cell,
            mod.plan(
                self._key,
                self._bkey,
                tuple(self._ptrs),
                ctypes.cast(self._fn, ctypes.c_void_p).value,
                _generation,
                self.I,
                self.H,
                self.max_b,
                d.L,
                d.path,
                d.reset_after,
            ),
        )
        return True

    @property
    def path(self) -> str:
        """The kernel path this plan runs (a name of :data:`PATHS` or :data:`INT8_PATHS`)."""
        code = self._desc.path
        return _INT8_NAMES[code] if self.kind == _INT8 else _NAMES[code]

    def __reduce__(
        self,
    ) -> tuple[object, tuple[()]]:  # a copied or pickled module rebuilds its plan
        return (_no_plan, ())

    def valid(self, params: dict[str, Tensor | None]) -> bool:
        """Whether every weight is still the same tensor, unchanged (version, data pointer), same path."""
        if self._gen != _generation[0]:
            return False
        for n, t, v, ptr in self._key:
            if params.get(n) is not t or t.data_ptr() != ptr or (v >= 0 and t._version != v):
                return False
        bufs = self._bufs
        for n, t, v, ptr in self._bkey:
            if bufs.get(n) is not t or t.data_ptr() != ptr or (v >= 0 and t._version != v):
                return False
        return True

    def _needs_grad(self, x: Tensor, h: Tensor | None) -> bool:
        if x.requires_grad or (h is not None and h.requires_grad):
            return True
        return any(t.requires_grad for t in self._tensors)

    def _inputs_ok(self, x: Tensor, h: Tensor | None, hshape: tuple[int, ...]) -> bool:
        if type(x) is not Tensor or x.dtype is not _F32 or not x.is_cpu:
            return False
        xs = x.shape
        if len(xs) != 2 or xs[1] != self.I or not 0 < xs[0] <= self.max_b or not x.is_contiguous():
            return False
        if h is None:
            return True
        return (
            type(h) is Tensor
            and h.dtype is _F32
            and h.is_cpu
            and h.shape == hshape
            and h.is_contiguous()
            and x.layout is h.layout is torch.strided
        )

    def cell(self, params: dict[str, Tensor | None], x: Tensor, h: Tensor | None) -> Tensor | None:
        """One GRUCell step x (B, I), h (B, H) or None → a fresh h' (B, H); None if this call is not eligible."""
        # The checks of eager_ok, _inputs_ok and valid, inlined and ordered for the common case (each Python
        # function call or tensor attribute costs ~0.05-0.1 µs here, and at H ≥ 256 a step's weights evict
        # this code's data from L1/L2, so every one is paid again cold): x's shape is compared with the last
        # call's as one torch.Size (its output template and h's expected shape are cached with it).
        if (
            _is_compiling()  # first: dynamo reads it as a constant and traces nothing after it
            or _is_tracing()
            or _any_autocast()
            or _dispatch_depth()
            or _fwad._current_level >= 0
            or _functorch_level() is not None
            or _in_onnx_export()
            or type(x) is not Tensor
            or x.dtype is not _F32
            or x.layout is not _STRIDED
            or not x.is_cpu
            or not x.is_contiguous()
        ):
            return None
        xs = x.shape
        if xs != self._xshape:
            if len(xs) != 2 or xs[1] != self.I or xs[0] <= 0:
                return None
            self._ylast = self._y_template(xs[0])
            self._xshape = xs
        tmpl = self._ylast
        if h is None:
            h = self._zeros(xs[0])
        elif (
            type(h) is not Tensor
            or h.dtype is not _F32
            or h.layout is not _STRIDED
            or not h.is_cpu
            or h.shape != tmpl.shape
            or not h.is_contiguous()
        ):
            return None
        if (_grad_enabled() and self._needs_grad(x, h)) or self._gen != _generation[0]:
            return None
        for n, t, v, ptr in self._key:
            if params.get(n) is not t or t.data_ptr() != ptr or (v >= 0 and t._version != v):
                return None
        if self._bkey:  # int8: the scale buffers
            bufs = self._bufs
            for n, t, v, ptr in self._bkey:
                if bufs.get(n) is not t or t.data_ptr() != ptr or (v >= 0 and t._version != v):
                    return None
        out = _empty_like(tmpl)
        B = xs[0]
        if (
            B > self.max_b
        ):  # float32 weights, a larger batch: the BLAS cell step (fused.cell's native call)
            p = self._ptrs
            H = self.H
            _cell_f32(
                B,
                self.I,
                H,
                x.data_ptr(),
                h.data_ptr(),
                p[0],
                p[1],
                p[2],
                p[3],
                self._desc.reset_after,
                out.data_ptr(),
                fused._scratch(7 * B * H, _F32).data_ptr(),
                fused._SGEMM,
            )
        elif self._fn(self._ref, B, x.data_ptr(), h.data_ptr(), out.data_ptr(), None):
            return None
        _calls["cell"] += 1
        return out

    def stack(
        self, params: dict[str, Tensor | None], x: Tensor, h: Tensor | None
    ) -> tuple[Tensor, Tensor] | None:
        """One GRU.step x (B, I), h (L, B, H) or None → fresh (y (B, H), h_new (L, B, H)); None if not eligible."""
        if not eager_ok() or type(x) is not Tensor or x.dim() != 2:
            return None
        if not self._inputs_ok(x, h, (self.L, x.shape[0], self.H)):
            return None
        if (_grad_enabled() and self._needs_grad(x, h)) or not self.valid(params):
            return None
        B = x.shape[0]
        if h is None:
            h = self._zeros(B)
            h_new = torch.empty((self.L, B, self.H))
        else:
            h_new = torch.empty_like(h)
        y = torch.empty_like(self._y_template(B))
        if self._fn(self._ref, B, x.data_ptr(), h.data_ptr(), h_new.data_ptr(), y.data_ptr()):
            return None
        _calls["step"] += 1
        return y, h_new

    def _y_template(self, B: int) -> Tensor:
        t = self._ytmpl.get(B)
        if t is None:
            with torch.inference_mode(False):
                t = self._ytmpl[B] = torch.empty((B, self.H))
        return t

    def _zeros(self, B: int) -> Tensor:
        """Zeros (L, B, H) for h=None, only ever read by the kernel (never returned)."""
        t = self._ytmpl.get(-B)
        if t is None:
            with torch.inference_mode(False):
                t = self._ytmpl[-B] = torch.zeros((self.L, B, self.H))
        return t

    def run_inplace(self, B: int, x: Tensor, h: Tensor) -> int:
        """Streamer's step: h (L, B, H) updated in place, no checks (the Streamer made them); 0 on success."""
        return int(self._fn(self._ref, B, x.data_ptr(), h.data_ptr(), h.data_ptr(), None))
