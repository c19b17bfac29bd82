"""The GRU variants in native code (``csrc/gru_variants.cpp``): layer norm, recurrent dropout, zoneout.

:func:`sequence` takes the arguments of ``grukit.functional.gru.sequence`` (the composite loop that defines
the math) and returns what it returns. The input side (``x W_ihᵀ``, its per-gate-group layer norm and
``b_ih``) runs once for all steps through ``grukit.functional.gru.input_projection`` (torch ops, so autograd
differentiates it); the recurrence — the recurrent product, its layer norm and ``b_hh``, the recurrent
dropout mask, the gates, zoneout and lengths — runs in one native loop per direction, forward and backward.
The masks are the caller's (``GRU._draw_masks`` draws them up front from torch's generator), so the native
and composite paths agree given the same masks. DropConnect is the caller's masked ``w_hh``.

``return_gates`` runs the composite loop. Double backward (``create_graph=True``) differentiates a composite
recomputation, so second derivatives stay exact. ``calls`` counts native calls (tests use it).
"""

from __future__ import annotations

import ctypes
from collections import Counter
from typing import Any

import torch
from torch import Tensor

from ..functional import gru as fgru
from . import fused

#: native calls so far: "sequence" (forward), "sequence_backward"
calls: Counter[str] = Counter()

_declared: dict[int, tuple[Any, ...]] = {}


def _fns(dtype: torch.dtype) -> tuple[Any, Any, Any]:
    """(forward, backward, BLAS gemm pointer) of the loaded library for ``dtype``."""
    lib = fused._lib
    fns = _declared.get(id(lib))
    if fns is None:
        i, p, d, lg = ctypes.c_int, ctypes.c_void_p, ctypes.c_double, ctypes.c_long
        for suf in ("f32", "f64"):
            fwd = getattr(lib, f"grukit_var_fwd_{suf}")
            fwd.argtypes = [i, i, i, p, p, p, p, p, p, p, d, p, p, i, d, p, i, i] + [p] * 9
            fwd.restype = i
            bwd = getattr(lib, f"grukit_var_bwd_{suf}")
            bwd.argtypes = [i, i, i, p, p, p, p, p, i, d, p, i, i, p, lg, lg] + [p] * 15
            bwd.restype = i
        fns = (
            lib.grukit_var_fwd_f32,
            lib.grukit_var_bwd_f32,
            lib.grukit_var_fwd_f64,
            lib.grukit_var_bwd_f64,
        )
        _declared.clear()
        _declared[id(lib)] = fns
    sgemm, dgemm = fused._SGEMM, fused._DGEMM
    if dtype == torch.float32:
        return fns[0], fns[1], sgemm
    return fns[2], fns[3], dgemm


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _c(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


def _zoneout_args(zoneout: Tensor | float | None) -> tuple[Tensor | None, int, float]:
    """(mask or None, zmode, p): zmode 0 none, 1 a {0, 1} keep mask (T, B, H), 2 the constant p (eval)."""
    if zoneout is None:
        return None, 0, 0.0
    if isinstance(zoneout, Tensor):
        return zoneout.contiguous(), 1, 0.0
    return None, 2, float(zoneout)


def _forward(
    gi: Tensor,
    ln_ih: Tensor | None,
    b_ih: Tensor | None,
    h0: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    ln_hh: Tensor | None,
    rmask: Tensor | None,
    zoneout: Tensor | float | None,
    lengths: Tensor | None,
    reset_after: bool,
    reverse: bool,
    eps: float,
    save: bool,
) -> tuple[Tensor, ...]:
    """Native forward → (out, h_n, hprev, gates, xhat, rstd, xhat_ih, rstd_ih), the last six empty unless saved.

    With ``ln_ih``, gi is the raw x W_ihᵀ and the loop applies γ_ih ⊙ LN_g(·) + b_ih itself; else gi is the
    finished input projection (b_ih None).
    """
    T, B, H3 = gi.shape
    H = H3 // 3
    zmask, zmode, zp = _zoneout_args(zoneout)
    lens = None if lengths is None else lengths.to(torch.int64).contiguous()
    dt = gi.dtype
    fused._check_native(
        "variant forward",
        dt,
        gi=gi,
        ln_ih=ln_ih,
        b_ih=b_ih,
        h0=h0,
        w_hh=w_hh,
        b_hh=b_hh,
        ln_hh=ln_hh,
        rmask=rmask,
        zmask=zmask,
    )
    out = gi.new_empty(T, B, H)
    hn = gi.new_empty(B, H)
    empty = gi.new_empty(0)

    def buf(on: bool, *shape: int) -> Tensor:
        return gi.new_empty(*shape) if on else empty

    hprev, gates = buf(save, T, B, H), buf(save, T, B, 4 * H)
    ln, lni = save and ln_hh is not None, save and ln_ih is not None
    xhat, rstd = buf(ln, T, B, H3), buf(ln, T, B, 3)
    xhat_ih, rstd_ih = buf(lni, T, B, H3), buf(lni, T, B, 3)
    fwd, _, gemm = _fns(dt)
    rc = fwd(
        T,
        B,
        H,
        gi.data_ptr(),
        _ptr(ln_ih),
        _ptr(b_ih),
        h0.data_ptr(),
        w_hh.data_ptr(),
        _ptr(b_hh),
        _ptr(ln_hh),
        eps,
        _ptr(rmask),
        _ptr(zmask),
        zmode,
        zp,
        _ptr(lens),
        int(reverse),
        int(reset_after),
        out.data_ptr(),
        hn.data_ptr(),
        hprev.data_ptr() if save else None,
        gates.data_ptr() if save else None,
        xhat.data_ptr() if ln else None,
        rstd.data_ptr() if ln else None,
        xhat_ih.data_ptr() if lni else None,
        rstd_ih.data_ptr() if lni else None,
        gemm,
    )
    if rc != 0:
        raise MemoryError("the native variant kernel could not allocate its work buffers")
    return out, hn, hprev, gates, xhat, rstd, xhat_ih, rstd_ih


_N_IN = 7  # the differentiable inputs of _VariantRecurrence: gi, ln_ih, b_ih, h0, w_hh, b_hh, ln_hh


class _VariantRecurrence(torch.autograd.Function):
    """out, h_n = the variant recurrence from gi (T, B, 3H) and h0 (B, H), with the native forward and backward
    (with ``ln_ih``, gi is the raw x W_ihᵀ and the input layer norm and b_ih are applied inside)."""

    @staticmethod
    def forward(
        ctx: Any,
        gi: Tensor,
        ln_ih: Tensor | None,
        b_ih: Tensor | None,
        h0: Tensor,
        w_hh: Tensor,
        b_hh: Tensor | None,
        ln_hh: Tensor | None,
        rmask: Tensor | None,
        zoneout: Tensor | float | None,
        lengths: Tensor | None,
        reset_after: bool,
        reverse: bool,
        eps: float,
    ) -> tuple[Tensor, Tensor]:
        out, hn, *saved = _forward(
            gi,
            ln_ih,
            b_ih,
            h0,
            w_hh,
            b_hh,
            ln_hh,
            rmask,
            zoneout,
            lengths,
            reset_after,
            reverse,
            eps,
            True,
        )
        zmask = zoneout if isinstance(zoneout, Tensor) else None
        ctx.save_for_backward(gi, ln_ih, b_ih, h0, w_hh, b_hh, ln_hh, rmask, zmask, lengths, *saved)
        ctx.zconst = None if isinstance(zoneout, Tensor) else zoneout
        ctx.reset_after, ctx.reverse, ctx.eps = reset_after, reverse, eps
        ctx.set_materialize_grads(False)
        return out, hn

    @staticmethod
    def backward(ctx: Any, gout: Tensor | None, ghn: Tensor | None) -> tuple[Tensor | None, ...]:
        (gi, ln_ih, b_ih, h0, w_hh, b_hh, ln_hh, rmask, zmask, lengths) = ctx.saved_tensors[:10]
        hprev, gates, xhat, rstd, xhat_ih, rstd_ih = ctx.saved_tensors[10:]
        needs = ctx.needs_input_grad[:_N_IN]
        rest = (None,) * 6
        if gout is None and ghn is None:
            return (None,) * _N_IN + rest
        zoneout = zmask if zmask is not None else ctx.zconst
        if torch.is_grad_enabled():  # create_graph=True: differentiate the composite recomputation
            inputs = (gi, ln_ih, b_ih, h0, w_hh, b_hh, ln_hh)
            return _composite_grads(ctx, inputs, rmask, zoneout, lengths, gout, ghn) + rest
        calls["sequence_backward"] += 1
        T, B, H3 = gi.shape
        H = H3 // 3
        dt = gi.dtype
        zm, zmode, zp = _zoneout_args(zoneout)
        lens = None if lengths is None else lengths.to(torch.int64).contiguous()
        if gout is not None:
            gout = gout.to(dt)
            if gout.stride(2) != 1:
                gout = gout.contiguous()
        ghn = None if ghn is None else ghn.to(dt).contiguous()
        dgi = gi.new_empty(T, B, H3)
        dgraw = gi.new_empty(T, B, H3)
        dh0 = gi.new_empty(B, H)

        def acc(on: bool) -> Tensor | None:
            return torch.zeros(H3, dtype=torch.float64) if on else None

        dln_ih, db_ih = acc(needs[1] and ln_ih is not None), acc(needs[2] and b_ih is not None)
        db_hh, dln_hh = acc(needs[5] and b_hh is not None), acc(needs[6] and ln_hh is not None)
        lni, ln = ln_ih is not None, ln_hh is not None
        _, bwd, gemm = _fns(dt)
        with torch.autocast("cpu", enabled=False):
            rc = bwd(
                T,
                B,
                H,
                w_hh.data_ptr(),
                _ptr(ln_hh),
                _ptr(ln_ih),
                _ptr(rmask),
                _ptr(zm),
                zmode,
                zp,
                _ptr(lens),
                int(ctx.reverse),
                int(ctx.reset_after),
                _ptr(gout),
                0 if gout is None else gout.stride(0),
                0 if gout is None else gout.stride(1),
                _ptr(ghn),
                hprev.data_ptr(),
                gates.data_ptr(),
                _ptr(xhat if ln else None),
                _ptr(rstd if ln else None),
                _ptr(xhat_ih if lni else None),
                _ptr(rstd_ih if lni else None),
                dgi.data_ptr(),
                dgraw.data_ptr(),
                dh0.data_ptr(),
                _ptr(dln_hh),
                _ptr(db_hh),
                _ptr(dln_ih),
                _ptr(db_ih),
                gemm,
            )
            if rc != 0:
                raise MemoryError("the native variant kernel could not allocate its work buffers")
            dw_hh = None
            if needs[4]:
                hd = hprev if rmask is None else hprev * rmask
                g2 = dgraw.view(T * B, H3)
                hd2 = hd.reshape(T * B, H)
                if ctx.reset_after:
                    dw_hh = torch.mm(g2.t(), hd2)
                else:
                    rhd = gates[..., :H] * hd
                    dw_hh = torch.cat(
                        [
                            torch.mm(g2[:, : 2 * H].t(), hd2),
                            torch.mm(g2[:, 2 * H :].t(), rhd.reshape(T * B, H)),
                        ]
                    )

        def back(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(dt)

        return (
            dgi if needs[0] else None,
            back(dln_ih),
            back(db_ih),
            dh0 if needs[3] else None,
            dw_hh,
            back(db_hh),
            back(dln_hh),
        ) + rest


def _composite_grads(
    ctx: Any,
    inputs: tuple[Tensor | None, ...],
    rmask: Tensor | None,
    zoneout: Tensor | float | None,
    lengths: Tensor | None,
    gout: Tensor | None,
    ghn: Tensor | None,
) -> tuple[Tensor | None, ...]:
    """The gradients by differentiating the composite loop run from gi (with create_graph, for double backward).

    ``fgru.sequence`` takes x and W_ih: an identity W_ih (3H, 3H) makes its input product gi itself (each
    product has one nonzero term, so it is exact); ln_ih and b_ih then apply as in the layer.
    """
    gi, ln_ih, b_ih, h0, w_hh, b_hh, ln_hh = inputs
    assert gi is not None and h0 is not None and w_hh is not None
    eye = torch.eye(gi.shape[-1], dtype=gi.dtype, device=gi.device)
    with torch.enable_grad(), torch.autocast("cpu", enabled=False):
        out, hn, _ = fgru.sequence(
            gi,
            h0,
            eye,
            w_hh,
            b_ih,
            b_hh,
            reset_after=ctx.reset_after,
            lengths=lengths,
            reverse=ctx.reverse,
            ln_ih=ln_ih,
            ln_hh=ln_hh,
            recurrent_mask=rmask,
            zoneout=zoneout,
            eps=ctx.eps,
        )
    return fused.grads_of_recomputation(
        (out, hn), (gout, ghn), tuple(inputs), ctx.needs_input_grad[:_N_IN]
    )


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
    ln_ih: Tensor | None = None,
    ln_hh: Tensor | None = None,
    recurrent_mask: Tensor | None = None,
    zoneout: Tensor | float | None = None,
    eps: float = fgru.LN_EPS,
) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor] | None]:
    """One direction of a variant GRU over x (T, B, I) from h0 (B, H) → (out (T, B, H), h_n (B, H), gates | None).

    The arguments and results are those of :func:`grukit.functional.gru.sequence` (float32/float64 CPU tensors;
    ``grukit.kernels.route`` checks them): ``ln_ih``/``ln_hh`` (3H,) layer-norm gains, ``recurrent_mask``
    (B, H) in {0, 1/(1−p)}, ``zoneout`` a keep mask (T, B, H) of {0, 1}, a float p (eval) or None.

    Example:
        >>> import torch
        >>> from grukit.functional import gru as fgru
        >>> x, h0, w_ih, w_hh = (
        ...     torch.randn(5, 2, 3),
        ...     torch.zeros(2, 4),
        ...     torch.randn(12, 3),
        ...     torch.randn(12, 4),
        ... )
        >>> gain = torch.ones(12)
        >>> out, h_n, _ = sequence(x, h0, w_ih, w_hh, None, None, ln_ih=gain, ln_hh=gain)
        >>> ref, _, _ = fgru.sequence(x, h0, w_ih, w_hh, None, None, ln_ih=gain, ln_hh=gain)
        >>> torch.allclose(out, ref, atol=1e-5)
        True
    """
    if return_gates:
        return fgru.sequence(
            x,
            h0,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            reset_after,
            lengths,
            reverse,
            True,
            ln_ih,
            ln_hh,
            recurrent_mask,
            zoneout,
            eps,
        )
    calls["sequence"] += 1
    if ln_ih is None:  # the finished input projection, as the composite loop computes it
        gi, bi = fgru.input_projection(x, w_ih, b_ih, None, eps), None
    else:  # the raw products; the loop applies γ_ih ⊙ LN_g(·) + b_ih per step
        gi, bi = torch.nn.functional.linear(x, w_ih), _c(b_ih)
    args = (
        gi.contiguous(),
        _c(ln_ih),
        bi,
        h0.contiguous(),
        w_hh.contiguous(),
        _c(b_hh),
        _c(ln_hh),
        _c(recurrent_mask),
        zoneout,
        lengths,
        bool(reset_after),
        bool(reverse),
        float(eps),
    )
    if torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (gi, ln_ih, bi, h0, w_hh, b_hh, ln_hh)
    ):
        out, hn = _VariantRecurrence.apply(*args)  # type: ignore[no-untyped-call]
        return out, hn, None
    with torch.no_grad():
        out, hn, *_ = _forward(*args, save=False)
    return out, hn, None
