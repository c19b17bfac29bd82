"""The fused CPU backend: the GRU recurrence in native code (``csrc/gru_fused.cpp``), float32 and float64.

Structure (forward): the input projection ``gi = x W_ihᵀ + b_ih`` (plus the foldable parts of ``b_hh``) for
all T steps is one GEMM through torch; the native loop then does, per step, one recurrent product (two for
``reset_after=False``) and one fused elementwise pass for all gates, saving ``h_{t-1}`` and the gates for
backward. Small batches (≤ ``matvec_max_batch``) use a hand-written matrix-vector kernel on weights packed
once per call, with the whole time loop inside one OpenMP region; larger batches call torch's own BLAS GEMM
per step. Backward walks the steps in reverse with one recurrent product per step plus one elementwise
pass, storing the pre-activation gradients; dW_ih, dW_hh, the biases and dX are then a few big GEMMs after
the loop (not per step, which is where ``torch.nn.GRU`` spends most of its backward time at small batch).

Double backward (``create_graph=True``) recomputes through the composite path, so second derivatives stay
exact. Compilation, tracing, export, tensor subclasses (fake/functional tensors), dispatch modes and
forward-mode AD all make :func:`unsupported_reason` return a reason, and ``backend="auto"`` then runs the
composite path, which those tools understand.

``calls`` counts the fused calls (tests use it to prove the fused path ran). :func:`stream_function` gives
``grukit.nn.Streamer`` its native step (one call per step for all layers). Every native call checks that each
buffer it reads has the dtype it was written in (:func:`_check_native`): a mismatch raises TypeError instead
of reading, say, bfloat16 bits as float32.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from typing import Any

import torch
from torch import Tensor

from ..functional import gru as composite
from . import _build, route

if os.environ.get("GRUKIT_NO_FUSED", "").strip() not in ("", "0"):
    raise ImportError("the fused kernel is disabled by GRUKIT_NO_FUSED")

_lib = _build.load()
_NO_CONTEXT = contextlib.nullcontext()  # reusable: nullcontext holds no state
_SGEMM, _DGEMM = _build.blas_gemm()
_MKL_PACK = _build.mkl_pack()


def use_mkl_pack(enabled: bool = True) -> bool:
    """Pack W_hh once per call with MKL's packed-GEMM API (float32, batch > ``matvec_max_batch``) instead of
    letting every per-step sgemm repack it. Off by default (``GRUKIT_MKL_PACK=1`` turns it on): it measured no
    faster than plain sgemm on our machines. Returns whether it is now in use."""
    on = enabled and all(_MKL_PACK)
    _lib.grukit_set_mkl_pack(*(_MKL_PACK if on else (None, None, None)))
    return on


use_mkl_pack(os.environ.get("GRUKIT_MKL_PACK", "").strip() not in ("", "0"))


def use_library(level: str) -> str:
    """Switch this process to the library built for ``level`` ("x86-64-v2/v3/v4", "generic"; the wheel's, or
    built into the cache), e.g. to test every ISA path; returns the level it had. Not thread-safe: for tests.

    Raises:
        BuildError: the CPU does not run ``level``, or no library for it can be found or built.
    """
    global _lib
    before = str(_build.loaded["isa"])
    lib = _build.load(level)
    _lib = lib
    lib.grukit_set_mkl_pack(None, None, None)
    import sys

    stream = sys.modules.get(__package__ + ".stream")
    if stream is not None:
        stream._use_library(lib)
    return before


#: fused calls so far: "sequence" (forward), "sequence_backward", "cell", "step" (GRU.step's streaming step),
#: "stream" (Streamer steps)
calls: Counter[str] = Counter()
#: batches up to this size use the hand-written matrix-vector kernel; larger ones the BLAS GEMM per step
matvec_max_batch: int = 4
#: larger batches with reset_after=True run the forward's recurrent product and the gates in one native pass
#: on W_hh packed once per call (see ``csrc/gru_fused.cpp``, mode 3); False (``GRUKIT_GATE_KERNEL=0``): the
#: BLAS GEMM per step plus a separate elementwise pass
gate_kernel: bool = os.environ.get("GRUKIT_GATE_KERNEL", "1").strip() not in ("", "0")
#: ... and the backward's from this hidden size up (below it MKL's per-step GEMM measured faster, AMD Zen 4)
gate_backward_min_hidden: int = 128

_FLOATS = (torch.float32, torch.float64)
_STRIDED = torch.strided
_functorch_level = route._functorch_level
_dispatch_depth = route._dispatch_depth
_is_tracing = route._is_tracing
_any_autocast = route._any_autocast
_in_onnx_export = route.in_onnx_export


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _check_native(where: str, dtype: torch.dtype, **tensors: Tensor | None) -> None:
    """Refuse a native call whose buffers are not all ``dtype`` (float32/float64), CPU and strided."""
    if dtype not in _FLOATS:
        raise TypeError(f"{where}: the fused kernel runs float32 or float64, got {dtype}")
    for name, t in tensors.items():
        if t is not None and (t.dtype != dtype or not t.is_cpu or t.layout != _STRIDED):
            raise TypeError(
                f"{where}: expected {name} as a CPU strided {dtype} buffer, got {t.dtype} on "
                f"{t.device} ({t.layout}); this happens when an autocast region changes a dtype "
                "between the kernel's own steps"
            )


def stream_function(dtype: torch.dtype) -> tuple[object, object]:
    """(native multi-layer step, BLAS gemm pointer) for ``dtype``: the step behind ``grukit.nn.Streamer``."""
    _check_native("stream_function", dtype)
    fn = _lib.grukit_stream_f32 if dtype == torch.float32 else _lib.grukit_stream_f64
    return fn, _fns(dtype)[3]


def _fns(dtype: torch.dtype) -> tuple[Any, Any, Any, Any]:
    if dtype == torch.float32:
        return _lib.grukit_fwd_f32, _lib.grukit_bwd_f32, _lib.grukit_cell_f32, _SGEMM
    return _lib.grukit_fwd_f64, _lib.grukit_bwd_f64, _lib.grukit_cell_f64, _DGEMM


_tls = threading.local()


def _scratch(n: int, dtype: torch.dtype) -> Tensor:
    """A work buffer of at least n elements, reused across calls of this thread (native calls release the GIL,
    so threads must not share one)."""
    buf = getattr(_tls, "scratch", None)
    if buf is None or buf.dtype != dtype or buf.numel() < n:
        with torch.inference_mode(False), torch.no_grad():
            buf = torch.empty(n, dtype=dtype)
        _tls.scratch = buf
    return buf


# ----------------------------------------------------------------------------------------- the workspace
#: the most bytes each thread's workspace keeps (``GRUKIT_WORKSPACE_MB``, default 1024; 0 turns reuse off)
workspace_max_bytes: int = int(float(os.environ.get("GRUKIT_WORKSPACE_MB", "1024")) * 2**20)
# How many owners a storage has; the workspace's own base tensor is one. Private torch API: without it no
# buffer is reused (every call allocates, as torch does).
_storage_use_count = getattr(torch._C, "_storage_Use_Count", None)


class _Workspace(threading.local):
    """Per-thread big buffers (gi, the saved hprev/gates, dgi/dgh) reused across calls.

    A fresh multi-megabyte tensor costs a page fault per 4 KiB page on first touch (the allocator hands large
    blocks back to the OS on free), which measured up to a third of a large-batch training step. A buffer is
    handed out again only when nothing else holds its storage (its use count is back to what it was when the
    workspace made it), so a buffer saved for a backward that has not run yet, or one someone kept, is never
    overwritten. Entries are dropped oldest first beyond ``workspace_max_bytes`` (dropping one in use is
    safe: its holder keeps the memory alive).
    """

    def __init__(self) -> None:
        # (flat base, its storage's address, the storage's use count with nothing but the base), oldest first
        self.bufs: list[tuple[Tensor, int, int]] = []


_ws = _Workspace()


def _buffer(shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """An uninitialised tensor of ``shape`` from this thread's workspace (a fresh one when reuse is off)."""
    n = 1
    for d in shape:
        n *= d
    nbytes = n * dtype.itemsize
    if _storage_use_count is None or nbytes > workspace_max_bytes or n == 0:
        return torch.empty(shape, dtype=dtype)
    bufs = _ws.bufs
    best = -1
    for i, (base, addr, idle) in enumerate(bufs):
        if (
            base.dtype == dtype
            and base.numel() >= n
            and (best < 0 or base.numel() < bufs[best][0].numel())
            and _storage_use_count(addr) == idle
        ):
            best = i
    if best >= 0:
        entry = bufs.pop(best)
        bufs.append(entry)  # most recently used last
        base = entry[0]
    else:
        with torch.inference_mode(False), torch.no_grad():
            base = torch.empty(n, dtype=dtype)
        addr = base.untyped_storage()._cdata
        bufs.append((base, addr, _storage_use_count(addr)))
        total = sum(b.numel() * b.element_size() for b, _, _ in bufs)
        while total > workspace_max_bytes and len(bufs) > 1:
            old = bufs.pop(0)[0]
            total -= old.numel() * old.element_size()
    with torch.inference_mode(False):
        return base[:n].view(shape)


def clear_workspace() -> None:
    """Drop this thread's reusable buffers (the memory goes back once nothing else holds it)."""
    _ws.bufs.clear()


def _rows(g: Tensor | None) -> tuple[Tensor | None, int, int]:
    """An output gradient (T, B, H) as the kernel reads it: (a tensor whose rows of H values are contiguous,
    its step stride, its row stride). A gradient broadcast along steps or rows (``out.sum().backward()``
    gives one with every stride 0) is not copied out to T·B·H values: only its distinct rows are made."""
    if g is None:
        return None, 0, 0
    if g.stride(2) != 1 and g.shape[2] > 1:
        keep = tuple(slice(None) if st else slice(0, 1) for st in g.stride()[:2])
        c = g[keep].contiguous()
        return c, (c.stride(0) if g.stride(0) else 0), (c.stride(1) if g.stride(1) else 0)
    return g, g.stride(0), g.stride(1)


def _prev_product(
    left: Tensor, hprev: Tensor | None, out: Tensor | None, h0: Tensor | None, B: int, reverse: bool
) -> Tensor:
    """leftᵀ · (the state before each step) over all T·B rows, left (T·B, K) → (K, H): one GEMM on the saved
    hprev, or, without it, one on ``out`` shifted by a step plus the first step's rows against ``h0``."""
    if hprev is not None:
        return torch.mm(left.t(), hprev.reshape(left.shape[0], -1))
    assert out is not None and h0 is not None
    n = left.shape[0]
    prev = out.reshape(n, -1)
    if reverse:  # step t's state before is out[t + 1]; the last step starts from h0
        return torch.mm(left[: n - B].t(), prev[B:]).addmm_(left[n - B :].t(), h0)
    return torch.mm(left[B:].t(), prev[: n - B]).addmm_(left[:B].t(), h0)


def _needs_grad(*ts: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


# ------------------------------------------------------------------------------------------- eligibility
def unsupported_reason(
    op: str,
    x: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    h0: Tensor | None = None,
    h: Tensor | None = None,
    reset_after: bool = True,
    lengths: Any = None,
    reverse: bool = False,
    return_gates: bool = False,
) -> str | None:
    """None if the fused kernel can run this call, else a short reason (then "auto" uses the composite path).

    The context and tensor checks are :mod:`grukit.kernels.route`'s; this adds the op's shape checks.
    """
    if torch.compiler.is_compiling():
        return (
            "torch.compile/torch.export is tracing the model (the composite path is traced instead)"
        )
    reason = route.graph_reason() or route.transform_reason()
    if reason is not None:
        return reason
    state = h0 if op == "sequence" else h
    reason = route.tensor_reason(
        x.dtype,
        (("x", x), ("h", state), ("w_ih", w_ih), ("w_hh", w_hh), ("b_ih", b_ih), ("b_hh", b_hh)),
    )
    if reason is not None:
        return reason
    return _shape_reason(op, x, state, w_ih, w_hh, b_ih, b_hh, lengths, return_gates)


def _shape_reason(
    op: str,
    x: Tensor,
    state: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Any,
    return_gates: bool,
) -> str | None:
    """The shape/argument part of :func:`unsupported_reason`, after the per-tensor checks passed."""
    if op == "sequence":
        if x.dim() != 3 or x.shape[0] == 0 or x.shape[1] == 0:
            return f"x of shape {tuple(x.shape)} (needs a non-empty (T, B, I))"
        if return_gates and _needs_grad(x, state, w_ih, w_hh, b_ih, b_hh):
            return "return_gates with autograd (the gates must be differentiable: composite path)"
        if lengths is not None and (type(lengths) is not Tensor or lengths.device.type != "cpu"):
            return "lengths must be a CPU tensor"
    elif x.dim() != 2 or x.shape[0] == 0:
        return f"x of shape {tuple(x.shape)} (needs a non-empty (B, I))"
    return None


# --------------------------------------------------------------------------------------------- forward
def _input_projection(
    x: Tensor,
    w_ih: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    reset_after: bool,
    pool: bool = False,
) -> Tensor:
    """gi (T·B, 3H) = x W_ihᵀ + b_ih + the parts of b_hh that add outside the reset gate, as one GEMM
    (into a workspace buffer with ``pool``, outside autocast regions, which must keep their dtype rules)."""
    T, B, I = x.shape
    H = w_ih.shape[0] // 3
    bias = b_ih
    if b_hh is not None:
        fold = b_hh if not reset_after else torch.cat([b_hh[: 2 * H], b_hh.new_zeros(H)])
        bias = fold if bias is None else bias + fold
    x2 = x.reshape(T * B, I)
    if pool and not _any_autocast():
        gi = _buffer((T * B, 3 * H), x.dtype)
        return (
            torch.mm(x2, w_ih.t(), out=gi)
            if bias is None
            else torch.addmm(bias, x2, w_ih.t(), out=gi)
        )
    return torch.mm(x2, w_ih.t()) if bias is None else torch.addmm(bias, x2, w_ih.t())


def _forward(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    reset_after: bool,
    lengths: Tensor | None,
    reverse: bool,
    save: bool,
    pool: bool = False,
    save_hprev: bool = True,
    gi: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Run the native forward loop → (out (T, B, H), h_n (B, H), hprev (T, B, H) | None, gates (T, B, 4H) | None).

    ``gates`` rows hold r, z, n and (W_hn h + b_hn) for reset_after, or r, z, n and r ⊙ h otherwise. With
    ``pool``, gi and the saved hprev/gates come from this thread's workspace (eager calls; the registered
    op's outputs must be plain tensors). ``save_hprev=False`` (only without lengths, where each step's
    output is its new state) saves the gates alone: backward then reads the state before each step from
    ``out`` and ``h0`` (a fifth fewer values kept per step). ``gi``: the input projection computed by the
    caller ((T·B, 3H), b_ih and the foldable b_hh added; ``grukit.kernels.bf16``), else computed here.
    """
    T, B, _ = x.shape
    H = w_hh.shape[1]
    if gi is None:
        gi = _input_projection(x, w_ih, b_ih, b_hh, reset_after, pool)
    w_hh = w_hh.contiguous()
    h0 = h0.contiguous()
    bhn = b_hh[2 * H :].contiguous() if (reset_after and b_hh is not None) else None
    lens = None if lengths is None else lengths.to(torch.int64).contiguous()
    out = x.new_empty(T, B, H)
    hn = x.new_empty(B, H)
    new = _buffer if pool else (lambda shape, dt: torch.empty(shape, dtype=dt))
    if not save_hprev and lengths is not None:
        raise ValueError(
            "save_hprev=False needs lengths=None: a masked step's output is not its state"
        )
    hprev = new((T, B, H), x.dtype) if save and save_hprev else None
    gates = new((T, B, 4 * H), x.dtype) if save else None
    if (
        gi.dtype != x.dtype or w_hh.dtype != x.dtype or h0.dtype != x.dtype or not w_hh.is_cpu
    ):  # e.g. addmm under autocast
        _check_native("gru_sequence forward", x.dtype, gi=gi, bhn=bhn, w_hh=w_hh, h0=h0)
    fwd, _, _, gemm = _fns(x.dtype)
    if B <= matvec_max_batch:
        mode = 1
    elif reset_after and gate_kernel:
        mode = 3
    else:
        mode = 1 if gemm is None else 2
    rc = fwd(
        T,
        B,
        H,
        gi.data_ptr(),
        _ptr(bhn),
        w_hh.data_ptr(),
        h0.data_ptr(),
        _ptr(lens),
        int(reverse),
        int(reset_after),
        out.data_ptr(),
        hn.data_ptr(),
        _ptr(hprev),
        _ptr(gates),
        torch.get_num_threads(),
        mode,
        gemm,
    )
    if rc != 0:
        raise MemoryError("the fused GRU kernel could not allocate its work buffers")
    return out, hn, hprev, gates


def _backward(
    x: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    lengths: Tensor | None,
    reset_after: bool,
    reverse: bool,
    hprev: Tensor | None,
    gates: Tensor,
    gout: Tensor | None,
    ghn: Tensor | None,
    needs: tuple[bool, ...],
    pool: bool = False,
    out: Tensor | None = None,
    h0: Tensor | None = None,
    return_dg: bool = False,
) -> tuple[Tensor | None, ...]:
    """Native backward loop, then the weight/input gradients as GEMMs over all steps at once (dgi and dgh
    from this thread's workspace with ``pool``; no gradient returned aliases them). Without ``hprev`` (a
    forward run with ``save_hprev=False``) the states before each step are read from ``out`` and ``h0``.
    ``return_dg`` appends dgi and dgh (the pre-activation gradients, (T, B, 3H)) to the result, for a caller
    that computes the GEMMs itself (``grukit.kernels.bf16``)."""
    T, B, I = x.shape
    H = w_hh.shape[1]
    w_hh = w_hh.contiguous()
    if hprev is None:
        if out is None or h0 is None or lengths is not None:
            raise ValueError(
                "backward without hprev needs the forward's out and h0, and no lengths"
            )
        out, h0 = out.contiguous(), h0.contiguous()
    lens = None if lengths is None else lengths.to(torch.int64).contiguous()
    gout, sdt, sdb = _rows(gout)
    ghn = None if ghn is None else ghn.contiguous()
    dt = x.dtype
    if (
        (gout is not None and gout.dtype != dt)
        or (ghn is not None and ghn.dtype != dt)
        or (hprev is not None and hprev.dtype != dt)
        or (out is not None and out.dtype != dt)
        or (h0 is not None and h0.dtype != dt)
        or gates.dtype != dt
        or w_hh.dtype != dt
    ):
        _check_native(
            "gru_sequence backward",
            dt,
            w_hh=w_hh,
            grad_out=gout,
            grad_hn=ghn,
            hprev=hprev,
            out=out,
            h0=h0,
        )
    _, bwd, _, gemm = _fns(x.dtype)
    if B <= matvec_max_batch:
        mode = 1
    elif reset_after and gate_kernel and (H >= gate_backward_min_hidden or gemm is None):
        mode = 3
    else:
        mode = 1 if gemm is None else 2
    steps = _chunk_steps(T, B, H, x.element_size())
    if mode == 2 and reset_after and hprev is None and lengths is None and not return_dg and steps:
        assert out is not None and h0 is not None
        return _backward_chunks(
            x, w_ih, w_hh, reverse, gates, gout, sdt, sdb, ghn, needs, out, h0, steps
        )
    new = _buffer if pool else (lambda shape, dt: torch.empty(shape, dtype=dt))
    dgi = new((T, B, 3 * H), x.dtype)
    dgh = new((T, B, 3 * H), x.dtype) if reset_after else None
    dh0 = x.new_empty(B, H)
    n_x, n_h0, n_wih, n_whh, n_bih, n_bhh = needs
    # the loop sums the bias gradients as it writes dgi/dgh (per step in x's dtype, across steps in float64),
    # saving two passes over T·B·3H values
    db = torch.empty(4 * H, dtype=torch.float64) if (n_bih or n_bhh) else None
    rc = bwd(
        T,
        B,
        H,
        w_hh.data_ptr(),
        _ptr(lens),
        int(reverse),
        int(reset_after),
        _ptr(gout),
        sdt,
        sdb,
        _ptr(ghn),
        _ptr(hprev),
        None if hprev is not None else _ptr(out),
        None if hprev is not None else _ptr(h0),
        gates.data_ptr(),
        dgi.data_ptr(),
        _ptr(dgh),
        dh0.data_ptr(),
        _ptr(db),
        torch.get_num_threads(),
        mode,
        gemm,
    )
    if rc != 0:
        raise MemoryError("the fused GRU kernel could not allocate its work buffers")
    dgi2 = dgi.view(T * B, 3 * H)
    dx = torch.mm(dgi2, w_ih).view(T, B, I) if n_x else None
    dw_ih = torch.mm(dgi2.t(), x.reshape(T * B, I)) if n_wih else None
    dw_hh = db_ih = db_hh = None
    if db is not None:
        # db's rows: dar, daz, dan (the sums of dgi), dan ⊙ r (reset_after: dgh's third block)
        dbt = db.to(dt)
        db_ih = dbt[: 3 * H].clone() if n_bih else None  # its own storage, not a view of dbt
        if n_bhh:
            db_hh = torch.cat([dbt[: 2 * H], dbt[3 * H :]]) if reset_after else dbt[: 3 * H].clone()
    if reset_after:
        if n_whh:
            dw_hh = _prev_product(dgh.view(T * B, 3 * H), hprev, out, h0, B, reverse)  # type: ignore[union-attr]
    elif n_whh:
        rh2 = gates.view(T * B, 4 * H)[:, 3 * H :]
        dw_hh = torch.cat(
            [
                _prev_product(dgi2[:, : 2 * H], hprev, out, h0, B, reverse),
                torch.mm(dgi2[:, 2 * H :].t(), rh2),
            ]
        )
    if return_dg:
        return dx, (dh0 if n_h0 else None), dw_ih, dw_hh, db_ih, db_hh, dgi, dgh
    return dx, (dh0 if n_h0 else None), dw_ih, dw_hh, db_ih, db_hh


#: the BLAS-path backward (mode 2: batch > ``matvec_max_batch``, H < ``gate_backward_min_hidden``, reset_after,
#: no lengths) on one thread, when its gate gradients (T·B·6H values) exceed ``backward_chunk_min_bytes``, runs
#: the native loop over chunks of about this many rows (steps × batch) and takes the gradient GEMMs of each
#: chunk right after it, while its gate gradients are still in cache, instead of writing all of them and
#: reading them back for three big GEMMs (AMD Zen 4, (1,256,50,32,64): ≈1 ms of ≈25 per training call; below
#: the size threshold they stay in cache anyway and the per-chunk calls cost more). 0 turns it off. The weight
#: and bias gradients are then sums over chunks: the same values up to summation order.
backward_chunk_rows: int = int(os.environ.get("GRUKIT_BACKWARD_CHUNK_ROWS", "1280"))
#: ... from this many bytes of gate gradients up
backward_chunk_min_bytes: int = 8 * 2**20


def _chunk_steps(T: int, B: int, H: int, itemsize: int) -> int:
    """Steps per chunk of the chunked backward (0: one pass over all T steps)."""
    if backward_chunk_rows <= 0 or torch.get_num_threads() != 1:
        return 0
    if T * B * 6 * H * itemsize < backward_chunk_min_bytes:
        return 0
    steps = max(1, -(-backward_chunk_rows // B))
    return steps if steps < T else 0


def _backward_chunks(
    x: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    reverse: bool,
    gates: Tensor,
    gout: Tensor | None,
    sdt: int,
    sdb: int,
    ghn: Tensor | None,
    needs: tuple[bool, ...],
    out: Tensor,
    h0: Tensor,
    steps: int,
) -> tuple[Tensor | None, ...]:
    """``_backward`` for mode 2 without hprev or lengths, chunk by chunk (see :data:`backward_chunk_rows`): the
    native loop over ``steps`` steps at a time (walking from the last step; the gradient carried into a chunk is
    the ``dh0`` of the chunk after it), then that chunk's dx rows, and its terms of dW_ih, dW_hh and the bias
    sums, on chunk-sized dgi/dgh buffers that stay in cache."""
    T, B, I = x.shape
    H = w_hh.shape[1]
    dt = x.dtype
    n_x, n_h0, n_wih, n_whh, n_bih, n_bhh = needs
    _, bwd, _, gemm = _fns(dt)
    dgi = _buffer((steps, B, 3 * H), dt)
    dgh = _buffer((steps, B, 3 * H), dt)
    dx = x.new_empty(T, B, I) if n_x else None
    dw_ih = x.new_zeros(3 * H, I) if n_wih else None
    dw_hh = x.new_zeros(3 * H, H) if n_whh else None
    want_db = n_bih or n_bhh
    db = torch.empty(4 * H, dtype=torch.float64) if want_db else None
    db_all = torch.zeros(4 * H, dtype=torch.float64) if want_db else None
    dh = [x.new_empty(B, H), x.new_empty(B, H)]
    carry = ghn  # the gradient flowing into the chunk from the steps after it (None: zero)
    x2, o2 = x.reshape(T * B, I), out.reshape(T * B, H)
    bounds = [(t0, min(T, t0 + steps)) for t0 in range(0, T, steps)]
    for k, (t0, t1) in enumerate(bounds if reverse else reversed(bounds)):
        n = t1 - t0
        # the state before the chunk's first step in the walk: h0 at the sequence's start, else out's row
        first = (t1 == T) if reverse else (t0 == 0)
        before = h0 if first else out[t1] if reverse else out[t0 - 1]
        target = dh[k & 1]
        rc = bwd(
            n,
            B,
            H,
            w_hh.data_ptr(),
            None,
            int(reverse),
            1,
            None if gout is None else gout.data_ptr() + gout.element_size() * t0 * sdt,
            sdt,
            sdb,
            _ptr(carry),
            None,
            out[t0].data_ptr(),
            before.data_ptr(),
            gates[t0].data_ptr(),
            dgi.data_ptr(),
            dgh.data_ptr(),
            target.data_ptr(),
            _ptr(db),
            torch.get_num_threads(),
            2,
            gemm,
        )
        if rc != 0:
            raise MemoryError("the fused GRU kernel could not allocate its work buffers")
        carry = target
        gi2 = dgi[:n].view(n * B, 3 * H)
        gh2 = dgh[:n].view(n * B, 3 * H)
        if db_all is not None and db is not None:
            db_all += db
        if dx is not None:
            torch.mm(gi2, w_ih, out=dx[t0:t1].view(n * B, I))
        if dw_ih is not None:
            dw_ih.addmm_(gi2.t(), x2[t0 * B : t1 * B])
        if dw_hh is not None:
            # the states before the chunk's steps: out shifted by one step, h0 for the sequence's first step
            if reverse:
                m = n - 1 if t1 == T else n
                if m:
                    dw_hh.addmm_(gh2[: m * B].t(), o2[(t0 + 1) * B : (t0 + 1 + m) * B])
                if m < n:
                    dw_hh.addmm_(gh2[m * B :].t(), h0)
            else:
                s0 = 1 if t0 == 0 else 0
                if s0:
                    dw_hh.addmm_(gh2[:B].t(), h0)
                if n > s0:
                    dw_hh.addmm_(gh2[s0 * B :].t(), o2[(t0 + s0 - 1) * B : (t1 - 1) * B])
    db_ih = db_hh = None
    if db_all is not None:
        dbt = db_all.to(dt)
        db_ih = dbt[: 3 * H].clone() if n_bih else None
        db_hh = torch.cat([dbt[: 2 * H], dbt[3 * H :]]) if n_bhh else None
    return dx, (carry if n_h0 else None), dw_ih, dw_hh, db_ih, db_hh


class _FusedSequence(torch.autograd.Function):
    """out, h_n = GRU recurrence over x (T, B, I) from h0 (B, H), with the fused forward and backward."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        h0: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor | None,
        b_hh: Tensor | None,
        lengths: Tensor | None,
        reset_after: bool,
        reverse: bool,
    ) -> tuple[Tensor, Tensor]:
        # without lengths each step's output is its new state: backward reads the states from out and h0
        out, hn, hprev, gates = _forward(
            x,
            h0,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            reset_after,
            lengths,
            reverse,
            save=True,
            pool=True,
            save_hprev=lengths is not None,
        )
        # out only when backward reads the states from it (with lengths hprev is kept instead)
        ctx.save_for_backward(
            x, h0, w_ih, w_hh, b_ih, b_hh, lengths, hprev, gates, out if hprev is None else None
        )
        ctx.reset_after, ctx.reverse = reset_after, reverse
        ctx.set_materialize_grads(False)
        return out, hn

    @staticmethod
    def backward(ctx: Any, gout: Tensor | None, ghn: Tensor | None) -> tuple[Tensor | None, ...]:
        x, h0, w_ih, w_hh, b_ih, b_hh, lengths, hprev, gates, out = ctx.saved_tensors
        needs = ctx.needs_input_grad[:6]
        none3 = (None, None, None)
        if gout is None and ghn is None:
            return (None,) * 6 + none3
        if torch.is_grad_enabled():
            # create_graph=True: differentiate the composite recomputation so higher derivatives exist.
            return (
                _composite_grads(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, gout, ghn, needs)
                + none3
            )
        calls["sequence_backward"] += 1
        # a backward run inside an autocast region keeps its GEMMs in x's dtype
        with torch.autocast("cpu", enabled=False) if _any_autocast() else _NO_CONTEXT:
            grads = _backward(
                x,
                w_ih,
                w_hh,
                lengths,
                ctx.reset_after,
                ctx.reverse,
                hprev,
                gates,
                gout,
                ghn,
                needs,
                pool=True,
                out=out,
                h0=h0,
            )
        return grads + none3


def _composite_grads(
    ctx: Any,
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Tensor | None,
    gout: Tensor | None,
    ghn: Tensor | None,
    needs: tuple[bool, ...],
) -> tuple[Tensor | None, ...]:
    inputs = (x, h0, w_ih, w_hh, b_ih, b_hh)
    with torch.enable_grad(), torch.autocast("cpu", enabled=False):
        out, hn, _ = composite.sequence(
            x,
            h0,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            reset_after=ctx.reset_after,
            lengths=lengths,
            reverse=ctx.reverse,
        )
    return grads_of_recomputation((out, hn), (gout, ghn), inputs, needs)


def grads_of_recomputation(
    results: tuple[Tensor, Tensor],
    grads: tuple[Tensor | None, Tensor | None],
    inputs: tuple[Tensor | None, ...],
    needs: tuple[bool, ...],
) -> tuple[Tensor | None, ...]:
    """The gradients of a differentiable recomputation (out, h_n) with respect to ``inputs`` (those with
    ``needs`` set and present), given the output gradients ``grads`` (None where not given): the double
    backward of the native loops, which differentiate the composite loop's graph (``create_graph``)."""
    outs = [o for o, g in zip(results, grads) if g is not None]
    gos = [g for g in grads if g is not None]
    wanted = [i for i, (t, n) in enumerate(zip(inputs, needs)) if n and t is not None]
    res: list[Tensor | None] = [None] * len(inputs)
    if wanted:
        got = torch.autograd.grad(
            outs,
            [inputs[i] for i in wanted],  # type: ignore[arg-type]
            gos,
            create_graph=True,
            allow_unused=True,
        )
        for i, g in zip(wanted, got):
            res[i] = g if g is not None else torch.zeros_like(inputs[i])
    return tuple(res)


# ----------------------------------------------------------------------------------------------- the ops
def sequence(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    reset_after: bool = True,
    lengths: Tensor | None = None,
    reverse: bool = False,
    return_gates: bool = False,
) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor] | None]:
    """One direction over x (T, B, I) from h0 (B, H) → (out (T, B, H), h_n (B, H), gates (z, r, n) or None)."""
    calls["sequence"] += 1
    if _needs_grad(x, h0, w_ih, w_hh, b_ih, b_hh):
        out, hn = _FusedSequence.apply(  # type: ignore[no-untyped-call]
            x, h0, w_ih, w_hh, b_ih, b_hh, lengths, bool(reset_after), bool(reverse)
        )
        return out, hn, None
    with torch.no_grad():
        out, hn, _, gates = _forward(
            x,
            h0,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            bool(reset_after),
            lengths,
            bool(reverse),
            save=return_gates,
            pool=True,
        )
    if not return_gates:
        return out, hn, None
    H = w_hh.shape[1]
    assert gates is not None
    return (
        out,
        hn,
        (
            gates[..., H : 2 * H].contiguous(),
            gates[..., :H].contiguous(),
            gates[..., 2 * H : 3 * H].contiguous(),
        ),
    )


def cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    reset_after: bool = True,
) -> Tensor:
    """One step: x (B, I), h (B, H) → h' (B, H). Without autograd, one native call (matvec at batch 1, else BLAS)."""
    calls["cell"] += 1
    if _needs_grad(x, h, w_ih, w_hh, b_ih, b_hh):
        h_new: Tensor = _FusedSequence.apply(  # type: ignore[no-untyped-call]
            x.unsqueeze(0), h, w_ih, w_hh, b_ih, b_hh, None, bool(reset_after), False
        )[1]
        return h_new
    B, I = x.shape
    H = w_hh.shape[1]
    x, h, w_ih, w_hh = x.contiguous(), h.contiguous(), w_ih.contiguous(), w_hh.contiguous()
    b_ih = None if b_ih is None else b_ih.contiguous()
    b_hh = None if b_hh is None else b_hh.contiguous()
    out = torch.empty((B, H), dtype=x.dtype)
    scratch = _scratch(7 * B * H, x.dtype)
    # x, h, the weights and biases were checked (CPU, strided, one float dtype) by unsupported_reason
    _, _, fn, gemm = _fns(x.dtype)
    fn(
        B,
        I,
        H,
        x.data_ptr(),
        h.data_ptr(),
        w_ih.data_ptr(),
        w_hh.data_ptr(),
        _ptr(b_ih),
        _ptr(b_hh),
        int(reset_after),
        out.data_ptr(),
        scratch.data_ptr(),
        gemm,
    )
    return out
