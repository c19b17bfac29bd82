"""Autocast (CPU, bfloat16 and float16): grukit stays within max(2 × torch.nn.GRU's error, fp32 tolerance)."""

from __future__ import annotations

import pytest
import torch
from support import randomize

import grukit
from grukit.errors import ShapeError  # noqa: F401  (import check: the error module loads)

FP32_TOL = 1e-5
DTYPES = [torch.bfloat16, torch.float16]


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert not torch.isnan(a).any()
    return float((a.detach().float() - b.detach().float()).abs().max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 20, 8, 16, 1), (3, 30, 8, 16, 2), (4, 12, 5, 32, 1)])
def test_gru_under_autocast_within_bound(dtype, shape):
    B, T, I, H, L = shape
    ref = torch.nn.GRU(I, H, L)
    ours = grukit.from_torch(randomize(ref))
    x = torch.randn(T, B, I, requires_grad=True)
    o32, h32 = ours(x)
    (g32,) = torch.autograd.grad(o32.sum() + h32.sum(), x)
    with torch.autocast("cpu", dtype=dtype):
        o, h = ours(x)
        (g,) = torch.autograd.grad(o.sum() + h.sum(), x)
        ro, rh = ref(x)
        (rg,) = torch.autograd.grad(ro.sum() + rh.sum(), x)
    assert o.dtype == ro.dtype
    assert _err(o, o32) <= max(2 * _err(ro, o32), FP32_TOL)
    assert _err(h, h32) <= max(2 * _err(rh, h32), FP32_TOL)
    assert _err(g, g32) <= max(2 * _err(rg, g32), FP32_TOL)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gru_under_autocast_low_precision_input(dtype):
    """An input already in the autocast dtype (from an autocast Linear) is accepted, as torch does."""
    ref = randomize(torch.nn.GRU(8, 16, 2, bidirectional=True))
    ours = grukit.from_torch(ref)
    lin = torch.nn.Linear(8, 8)
    x = torch.randn(15, 2, 8)
    with torch.autocast("cpu", dtype=dtype):
        xa = lin(x)
        o, h = ours(xa)
        ro, rh = ref(xa)
    assert xa.dtype == dtype
    o32, h32 = ours(xa.float())  # the exact answer for the input it was given
    assert _err(o, o32) <= max(2 * _err(ro, o32), FP32_TOL)
    assert _err(h, h32) <= max(2 * _err(rh, h32), FP32_TOL)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cell_and_step_under_autocast_are_fp32_exact(dtype):
    """torch computes GRUCell in fp32 under autocast, so the bound is the fp32 tolerance (also for step/dx)."""
    cell = randomize(grukit.GRUCell(8, 16))
    x = torch.randn(3, 8, requires_grad=True)
    h = torch.randn(3, 16)
    c32 = cell(x, h)
    (g32,) = torch.autograd.grad(c32.sum(), x)
    gru = randomize(grukit.GRU(8, 16, 2))
    y32, hs32 = gru.step(x.detach())
    with torch.autocast("cpu", dtype=dtype):
        c = cell(x, h)
        c0 = cell(x.detach())
        y, hs = gru.step(x.detach())
    (g,) = torch.autograd.grad(c.sum(), x)  # backward outside the region, as torch recommends
    assert _err(c, c32) <= FP32_TOL and _err(g, g32) <= FP32_TOL
    assert _err(c0, cell(x.detach())) <= FP32_TOL
    assert _err(y, y32) <= FP32_TOL and _err(hs, hs32) <= FP32_TOL


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [{"layer_norm": True}, {"reset_after": False}, {"zoneout": 0.2}])
def test_variants_under_autocast_are_fp32_exact(dtype, kw):
    gru = randomize(grukit.GRU(6, 8, **kw)).eval()
    x = torch.randn(10, 2, 6, requires_grad=True)
    o32, _ = gru(x)
    (g32,) = torch.autograd.grad(o32.sum(), x)
    with torch.autocast("cpu", dtype=dtype):
        o, _ = gru(x)
    (g,) = torch.autograd.grad(o.sum(), x)  # backward outside the region, as torch recommends
    assert _err(o, o32) <= FP32_TOL and _err(g, g32) <= FP32_TOL


def test_op_autocast_rule_runs_in_fp32():
    """The op's own autocast rule: low-precision inputs are cast to float32 (the recurrence accumulates in fp32)."""
    x, h0 = torch.randn(6, 2, 3), torch.randn(2, 4)
    w_ih, w_hh, b = torch.randn(12, 3) * 0.5, torch.randn(12, 4) * 0.5, torch.randn(12) * 0.5
    want = torch.ops.grukit.gru_sequence(x, h0, w_ih, w_hh, b, b, None, True, False, False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = torch.ops.grukit.gru_sequence(
            x.bfloat16(), h0, w_ih, w_hh, b, b, None, True, False, False
        )
    assert got[0].dtype == torch.float32
    assert _err(got[0], want[0]) <= 0.05  # only x's bf16 rounding differs
    assert _err(got[0], want[0]) > 0  # (it was really rounded: the comparison can fail)


def test_native_boundary_refuses_a_wrong_dtype():
    """A buffer in another dtype than the kernel's never reaches the native code."""
    fused = pytest.importorskip("grukit.kernels.fused", exc_type=ImportError)
    x, h0 = torch.randn(4, 1, 3), torch.zeros(1, 4)
    w_ih, w_hh = torch.randn(12, 3), torch.randn(12, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # addmm → bf16 gi: the kernel must refuse it
        with pytest.raises(TypeError, match="gi"):
            fused._forward(x, h0, w_ih, w_hh, None, None, True, None, False, save=False)
