"""bfloat16 GEMMs for training under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (``csrc/gru_bf16.cpp``).

When autocast asks for bfloat16 on a CPU with AVX-512-BF16 (:func:`available`), :func:`sequence` runs a GRU
direction with its big matrix products in bfloat16 with float32 accumulation and float32 outputs: the input
projection ``gi = x W_ihᵀ``, and in backward ``dx = dgi W_ih``, ``dW_ih = dgiᵀ x`` and ``dW_hh = dghᵀ h_prev``
(operands rounded to bfloat16 once, products exact, sums in float32). The recurrence itself — the per-step
product ``W_hh h``, the state, the gates and their derivatives — stays float32 in the fused loop
(``grukit.kernels.fused``), so the output error is far below ``torch.nn.GRU``'s under the same autocast (which
rounds every matmul output and the state to bfloat16). Outputs are float32.

torch's own bf16 matmul rounds its output to bfloat16, and MKL's ``cblas_gemm_bf16bf16f32`` in torch's library
measured no faster than float32 sgemm on AMD Zen 4, hence grukit's own GEMM. float16 autocast stays float32.

``GRUKIT_BF16_AUTOCAST=0`` turns the path off (autocast then runs the float32 kernel as before).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import torch
from torch import Tensor

from . import fused

#: the path :func:`mm` uses: 1 = AVX-512-BF16, 0 = portable (tests force it), None = the best available;
#: 0 also makes :func:`left` convert with the portable loop
force_path: int | None = None
_declared: set[int] = set()


def _lib() -> Any:
    lib = fused._lib  # fused.use_library may switch it
    if id(lib) not in _declared:
        i, p, lg = ctypes.c_int, ctypes.c_void_p, ctypes.c_long
        lib.grukit_bf16_best_path.argtypes = []
        lib.grukit_bf16_best_path.restype = i
        lib.grukit_bf16_packed_size.argtypes = [i, i]
        lib.grukit_bf16_packed_size.restype = lg
        lib.grukit_bf16_pack.argtypes = [i, i, p, lg, lg, p, i]
        lib.grukit_bf16_pack.restype = None
        lib.grukit_bf16_pack_f32.argtypes = [i, i, p, lg, lg, p, i]
        lib.grukit_bf16_pack_f32.restype = None
        lib.grukit_bf16_rows_f32.argtypes = [i, i, p, lg, lg, p, lg, i, i]
        lib.grukit_bf16_rows_f32.restype = i
        lib.grukit_bf16_gemm.argtypes = [i, i, i, p, lg, p, p, lg, p, i, i, i]
        lib.grukit_bf16_gemm.restype = i
        lib.grukit_fwd3_bf16.argtypes = [i, i, i, p, p, p, p, p, i, p, p, p, p, i]
        lib.grukit_fwd3_bf16.restype = i
        lib.grukit_bwd3_bf16.argtypes = [i, i, i, p, p, i, p, lg, lg, p, p, p, p, p, p, p, p, p, i]
        lib.grukit_bwd3_bf16.restype = i
        _declared.add(id(lib))
    return lib


def enabled() -> bool:
    """Whether autocast-bf16 training may use this path (``GRUKIT_BF16_AUTOCAST``, default on)."""
    return os.environ.get("GRUKIT_BF16_AUTOCAST", "1").strip() not in ("", "0")


def available() -> bool:
    """Whether this CPU runs the AVX-512-BF16 GEMM (the only one faster than float32; the route asks this)."""
    return bool(_lib().grukit_bf16_best_path() == 1)


def _new(shape: tuple[int, ...], dtype: torch.dtype, pool: bool) -> Tensor:
    """An uninitialised tensor: from this thread's workspace (``fused._buffer``) when ``pool`` — for temporaries
    of the training call, whose tens of megabytes would otherwise be fresh pages every call — else fresh."""
    return fused._buffer(shape, dtype) if pool else torch.empty(shape, dtype=dtype)


def pack(b: Tensor, *, pool: bool = False) -> Tensor:
    """Pack ``b`` (N, K) — any strides; float32 (rounded to nearest even) or bfloat16 — as the right operand
    (``pool``: into a workspace buffer, see :func:`_new`)."""
    lib = _lib()
    if b.dtype not in (torch.float32, torch.bfloat16):
        b = b.to(torch.float32)
    N, K = b.shape
    P = _new((int(lib.grukit_bf16_packed_size(N, K)),), torch.bfloat16, pool)
    fn = lib.grukit_bf16_pack_f32 if b.dtype == torch.float32 else lib.grukit_bf16_pack
    fn(N, K, b.data_ptr(), b.stride(0), b.stride(1), P.data_ptr(), torch.get_num_threads())
    return P


def left(*parts: Tensor, path: int | None = None, pool: bool = False) -> Tensor:
    """The left operand: ``torch.cat(parts, dim=1)`` (each (M, K_i), any strides, float32 or bfloat16) as
    bfloat16 rows, K rounded up to even (zero padded), rounding float32 to nearest even.

    ``path``: None = the best this CPU runs (the portable loop when :data:`force_path` is 0), 0 = the portable
    loop, 1 = a vector conversion (raises RuntimeError where these strides have none on this CPU): AVX-512 for
    a transposed part (unit stride along M; the portable loop's bits), AVX-512-BF16 for unit stride along K.
    ``pool``: into a workspace buffer (see :func:`_new`).
    """
    if path is None:
        path = 0 if force_path == 0 else -1
    M = parts[0].shape[0]
    K = sum(p.shape[1] for p in parts)
    A = _new((M, K + K % 2), torch.bfloat16, pool)
    lib, off = _lib(), 0
    for p in parts:
        if p.dtype != torch.float32:
            p = p.to(torch.float32)
        k = p.shape[1]
        rc = lib.grukit_bf16_rows_f32(
            M,
            k,
            p.data_ptr(),
            p.stride(0),
            p.stride(1),
            A.data_ptr() + 2 * off,
            A.stride(0),
            torch.get_num_threads(),
            path,
        )
        if rc != 0:
            raise RuntimeError(
                f"no vector bf16 conversion for a part with strides {p.stride()} on this CPU (path 1 forced)"
            )
        off += k
    if K % 2:
        A[:, K] = 0
    return A


def mm(
    a: Tensor,
    b: Tensor | None = None,
    *,
    packed: Tensor | None = None,
    n: int | None = None,
    bias: Tensor | None = None,
    out: Tensor | None = None,
    pool: bool = False,
) -> Tensor:
    """``a (M, K) @ b (N, K)ᵀ (+ bias)`` with bfloat16 operands, float32 accumulation, float32 result (M, N).

    Args:
        a: the left operand (M, K), any strides (float32, rounded to bfloat16), or :func:`left`'s result.
        b: the right operand as (N, K) (a transposed view is fine), or None with ``packed`` and ``n``.
        packed: ``pack(b)``, to reuse a packing.
        n: N when ``packed`` is given.
        bias: (N,) float32 added to every row, or None.
        out: a float32 (M, N) tensor with unit column stride to write into.
        pool: make the bfloat16 copies of the operands in this thread's workspace (temporaries of a training
            call; the result is never pooled).

    Example:
        >>> import torch
        >>> from grukit.kernels import bf16
        >>> a, b = torch.randn(5, 8), torch.randn(3, 8)
        >>> ref = a.bfloat16().double() @ b.bfloat16().double().t()
        >>> bool((bf16.mm(a, b).double() - ref).abs().max() < 1e-4)
        True
    """
    M = a.shape[0]
    if packed is None:
        if b is None:
            raise ValueError("mm needs b, or packed and n")
        packed, n, K = pack(b, pool=pool), b.shape[0], b.shape[1]
    else:
        K = a.shape[1]
    if n is None:
        raise ValueError("n (the number of columns) is required with packed")
    if a.shape[1] not in (K, K + K % 2):
        raise ValueError(f"expected a of shape (M, {K}), got {tuple(a.shape)}")
    ready = a.dtype == torch.bfloat16 and a.stride(1) == 1 and a.shape[1] == K + K % 2
    A = a if ready else left(a[:, :K], pool=pool)
    if out is None:
        out = torch.empty(M, n, dtype=torch.float32)
    if out.dtype != torch.float32 or out.shape != (M, n) or out.stride(1) != 1:
        raise ValueError(f"out must be float32 ({M}, {n}) with unit column stride")
    if bias is not None:
        bias = bias.to(torch.float32).contiguous()
    path = force_path if force_path is not None else -1
    rc = _lib().grukit_bf16_gemm(
        M,
        n,
        K,
        A.data_ptr(),
        A.stride(0),
        packed.data_ptr(),
        out.data_ptr(),
        out.stride(0),
        None if bias is None else bias.data_ptr(),
        0,
        torch.get_num_threads(),
        path,
    )
    if rc != 0:
        raise RuntimeError("the AVX-512-BF16 GEMM path was forced on a CPU without AVX-512-BF16")
    return out


def _bias(b_ih: Tensor | None, b_hh: Tensor | None, H: int, reset_after: bool) -> Tensor | None:
    bias = b_ih
    if b_hh is not None:
        fold = b_hh if not reset_after else torch.cat([b_hh[: 2 * H], b_hh.new_zeros(H)])
        bias = fold if bias is None else bias + fold
    return bias


def _states_before(
    hprev: Tensor | None, out: Tensor | None, h0: Tensor, reverse: bool
) -> list[Tensor]:
    """The state each step started from, as (rows, H) blocks in step order (concatenated: (T·B, H))."""
    if hprev is not None:
        return [hprev.reshape(-1, hprev.shape[-1])]
    assert out is not None
    H = h0.shape[-1]
    rest = (out[1:] if reverse else out[:-1]).reshape(-1, H)
    return [rest, h0] if reverse else [h0, rest]


#: the per-step recurrent product W_hh h in bfloat16 too (forward, reset_after, batch > matvec_max_batch);
#: False: float32 there (``GRUKIT_BF16_RECURRENT=0``)
recurrent: bool = os.environ.get("GRUKIT_BF16_RECURRENT", "1").strip() not in ("", "0")


def _forward_bf16(
    x: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    lengths: Tensor | None,
    reverse: bool,
    gi: Tensor,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """The forward loop with the recurrent products in bfloat16 (``grukit_fwd3_bf16``), saving for backward
    what ``fused._forward`` saves (hprev only with lengths)."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    w_hh, h0 = w_hh.contiguous(), h0.contiguous()
    bhn = b_hh[2 * H :].contiguous() if b_hh is not None else None
    lens = None if lengths is None else lengths.to(torch.int64).contiguous()
    out = x.new_empty(T, B, H)
    hn = x.new_empty(B, H)
    hprev = fused._buffer((T, B, H), x.dtype) if lengths is not None else None
    gates = fused._buffer((T, B, 4 * H), x.dtype)
    rc = _lib().grukit_fwd3_bf16(
        T,
        B,
        H,
        gi.data_ptr(),
        None if bhn is None else bhn.data_ptr(),
        w_hh.data_ptr(),
        h0.data_ptr(),
        None if lens is None else lens.data_ptr(),
        int(reverse),
        out.data_ptr(),
        hn.data_ptr(),
        None if hprev is None else hprev.data_ptr(),
        gates.data_ptr(),
        torch.get_num_threads(),
    )
    if rc != 0:
        raise (
            MemoryError("the bf16 GRU forward could not allocate its buffers")
            if rc == 1
            else (RuntimeError("the bf16 GRU forward needs AVX-512-BF16"))
        )
    return out, hn, hprev, gates


def _backward_bf16(
    x: Tensor,
    w_hh: Tensor,
    lengths: Tensor | None,
    reverse: bool,
    hprev: Tensor | None,
    gates: Tensor,
    gout: Tensor | None,
    ghn: Tensor | None,
    out: Tensor | None,
    h0: Tensor,
    bias_grads: bool,
) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """The reset_after backward loop with the recurrent products in bfloat16 (``grukit_bwd3_bf16``)
    → (dh0, db_ih, db_hh, dgi, dgh) as ``fused._backward`` computes them."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    w_hh = w_hh.contiguous()
    lens = None if lengths is None else lengths.to(torch.int64).contiguous()
    gout, sdt, sdb = fused._rows(gout)
    ghn = None if ghn is None else ghn.contiguous()
    if hprev is None:
        assert out is not None
        out = out.contiguous()
    h0 = h0.contiguous()
    dgi = fused._buffer((T, B, 3 * H), x.dtype)
    dgh = fused._buffer((T, B, 3 * H), x.dtype)
    dh0 = x.new_empty(B, H)
    db = torch.empty(4 * H, dtype=torch.float64) if bias_grads else None

    def ptr(t: Tensor | None) -> int | None:
        return None if t is None else t.data_ptr()

    rc = _lib().grukit_bwd3_bf16(
        T,
        B,
        H,
        w_hh.data_ptr(),
        ptr(lens),
        int(reverse),
        ptr(gout),
        sdt,
        sdb,
        ptr(ghn),
        ptr(hprev),
        None if hprev is not None else ptr(out),
        h0.data_ptr(),
        gates.data_ptr(),
        dgi.data_ptr(),
        dgh.data_ptr(),
        dh0.data_ptr(),
        ptr(db),
        torch.get_num_threads(),
    )
    if rc != 0:
        raise (
            MemoryError("the bf16 GRU backward could not allocate its buffers")
            if rc == 1
            else (RuntimeError("the bf16 GRU backward needs AVX-512-BF16"))
        )
    db_ih = db_hh = None
    if db is not None:
        dbt = db.to(x.dtype)
        db_ih = dbt[: 3 * H].clone()
        db_hh = torch.cat([dbt[: 2 * H], dbt[3 * H :]])
    return dh0, db_ih, db_hh, dgi, dgh


class _Bf16Sequence(torch.autograd.Function):
    """The fused GRU direction with its input projection and gradient GEMMs in bfloat16 (float32 results)."""

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
        T, B, I = x.shape
        H = w_hh.shape[1]
        gi = mm(
            x.reshape(T * B, I),
            w_ih,
            bias=_bias(b_ih, b_hh, H, reset_after),
            out=fused._buffer((T * B, 3 * H), torch.float32),
            pool=True,
        )
        if recurrent and reset_after and B > fused.matvec_max_batch and fused.gate_kernel:
            out, hn, hprev, gates = _forward_bf16(x, h0, w_hh, b_hh, lengths, reverse, gi)
        else:
            out, hn, hprev, gates = fused._forward(
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
                save_hprev=lengths is not None or not reset_after,
                gi=gi,
            )
        ctx.save_for_backward(
            x, h0, w_ih, w_hh, lengths, hprev, gates, out if hprev is None else None
        )
        ctx.reset_after, ctx.reverse = reset_after, reverse
        ctx.set_materialize_grads(False)
        return out, hn

    @staticmethod
    def backward(ctx: Any, gout: Tensor | None, ghn: Tensor | None) -> tuple[Tensor | None, ...]:
        x, h0, w_ih, w_hh, lengths, hprev, gates, out = ctx.saved_tensors
        n_x, n_h0, n_wih, n_whh, n_bih, n_bhh = ctx.needs_input_grad[:6]
        none3 = (None, None, None)
        if gout is None and ghn is None:
            return (None,) * 6 + none3
        if torch.is_grad_enabled():
            raise RuntimeError(
                "double backward through the autocast-bf16 GRU path is not supported; "
                "set GRUKIT_BF16_AUTOCAST=0 (float32 kernel, exact composite double backward)"
            )
        T, B, I = x.shape
        H = w_hh.shape[1]
        reset_after = ctx.reset_after
        dh0: Tensor | None
        dgh: Tensor | None
        with torch.autocast("cpu", enabled=False):
            if recurrent and reset_after and B > fused.matvec_max_batch and fused.gate_kernel:
                dh0, db_ih, db_hh, dgi, dgh = _backward_bf16(
                    x, w_hh, lengths, ctx.reverse, hprev, gates, gout, ghn, out, h0, n_bih or n_bhh
                )
            else:
                _, dh0, _, _, db_ih, db_hh, dgi, dgh = fused._backward(
                    x,
                    w_ih,
                    w_hh,
                    lengths,
                    reset_after,
                    ctx.reverse,
                    hprev,
                    gates,
                    gout,
                    ghn,
                    (False, n_h0, False, False, n_bih, n_bhh),
                    pool=True,
                    out=out,
                    h0=h0,
                    return_dg=True,
                )
            assert dgi is not None
            dgi2 = dgi.view(T * B, 3 * H)
            x2 = x.reshape(T * B, I)
            # the operands' bf16 copies (tens of MB) come from the workspace: fresh pages cost more than the copying
            dx = mm(dgi2, w_ih.t(), pool=True).view(T, B, I) if n_x else None
            # the weight gradients as their transposes (x and h_prev are the smaller operands to transpose)
            dw_ih = mm(x2.t(), dgi2.t(), pool=True).t() if n_wih else None
            dw_hh = None
            if n_whh:
                hp = left(*(p.t() for p in _states_before(hprev, out, h0, ctx.reverse)), pool=True)
                if reset_after:
                    assert dgh is not None
                    dw_hh = mm(hp, dgh.view(T * B, 3 * H).t(), pool=True).t()
                else:
                    rh2 = gates.view(T * B, 4 * H)[:, 3 * H :]
                    dw_hh = torch.cat(
                        [
                            mm(hp, dgi2[:, : 2 * H].t(), pool=True).t(),
                            mm(rh2.t(), dgi2[:, 2 * H :].t(), pool=True).t(),
                        ]
                    )
        return (
            dx,
            dh0 if n_h0 else None,
            dw_ih,
            dw_hh,
            db_ih if n_bih else None,
            db_hh if n_bhh else None,
        ) + none3


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
) -> tuple[Tensor, Tensor, None]:
    """One direction over x (T, B, I) float32 → (out (T, B, H), h_n (B, H), None), the GEMMs in bfloat16.

    The route (``grukit.kernels.route``, route "bf16") sends a GRU here under CPU autocast to bfloat16 when
    :func:`available`; ``return_gates`` is never routed here.
    """
    if return_gates:
        raise ValueError("the bf16 path does not return gates")
    fused.calls["bf16_sequence"] += 1
    out, hn = _Bf16Sequence.apply(  # type: ignore[no-untyped-call]
        x, h0, w_ih, w_hh, b_ih, b_hh, lengths, bool(reset_after), bool(reverse)
    )
    return out, hn, None
