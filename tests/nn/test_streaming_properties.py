"""Streaming (step and chunked calls) equals one full call; hypothesis over random sizes vs the reference."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from support import randomize

import grukit

from ._util import reference_of

CHUNK_TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("batch_first", [False, True])
def test_chunked_and_step_equal_full(dtype, reset_after, batch_first):
    gru = randomize(
        grukit.GRU(4, 6, 3, reset_after=reset_after, batch_first=batch_first, dtype=dtype), 0.3
    ).eval()
    T, B = 23, 3
    x = torch.randn((B, T, 4) if batch_first else (T, B, 4), dtype=dtype)
    h0 = torch.randn(3, B, 6, dtype=dtype)
    full, h_full = gru(x, h0)
    tdim = 1 if batch_first else 0
    h, pieces = h0, []
    for chunk in torch.split(x, [5, 1, 9, 8], dim=tdim):
        y, h = gru(chunk, h)
        pieces.append(y)
    assert (torch.cat(pieces, tdim) - full).abs().max() <= CHUNK_TOL[dtype]
    assert (h - h_full).abs().max() <= CHUNK_TOL[dtype]
    h, steps = None, []
    with torch.inference_mode():
        h = h0
        for t in range(T):
            y, h = gru.step(x.select(tdim, t), h)
            steps.append(y)
    assert (torch.stack(steps, tdim) - full[..., :6]).abs().max() <= CHUNK_TOL[dtype]
    assert (h - h_full).abs().max() <= CHUNK_TOL[dtype]


def test_step_unbatched_and_default_state():
    gru = randomize(grukit.GRU(4, 6, 2, dtype=torch.float64)).eval()
    x = torch.randn(5, 4, dtype=torch.float64)
    full, h_full = gru(x)  # unbatched (T, I)
    h = None
    for t in range(5):
        y, h = gru.step(x[t], h)
        assert y.shape == (6,) and h.shape == (2, 6)
        assert (y - full[t]).abs().max() <= 1e-12
    assert (h - h_full).abs().max() <= 1e-12


def test_step_rejects_bidirectional():
    gru = grukit.GRU(4, 6, bidirectional=True)
    with pytest.raises(ValueError, match="unidirectional"):
        gru.step(torch.randn(2, 4))


@settings(max_examples=25, deadline=None)
@given(
    T=st.integers(1, 6),
    B=st.integers(1, 4),
    I=st.integers(1, 5),
    H=st.integers(1, 5),
    layers=st.integers(1, 2),
    bidir=st.booleans(),
    reset_after=st.booleans(),
    bias=st.booleans(),
    data=st.data(),
)
def test_random_sizes_match_reference(T, B, I, H, layers, bidir, reset_after, bias, data):
    gru = randomize(
        grukit.GRU(
            I,
            H,
            layers,
            bias=bias,
            bidirectional=bidir,
            reset_after=reset_after,
            dtype=torch.float64,
        ),
        seed=T * 31 + B,
    )
    lengths = data.draw(st.none() | st.lists(st.integers(1, T), min_size=B, max_size=B))
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0 = torch.randn(layers * (2 if bidir else 1), B, H, dtype=torch.float64)
    out, h_n = gru(x, h0, lengths=lengths)
    ref_out, ref_h, _ = reference_of(gru, x, h0, lengths)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, atol=1e-10, rtol=0)
    np.testing.assert_allclose(h_n.detach().numpy(), ref_h, atol=1e-10, rtol=0)


def test_lengths_any_order_and_device_type():
    gru = randomize(grukit.GRU(3, 4, bidirectional=True, dtype=torch.float64))
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    a = gru(x, lengths=torch.tensor([2, 6, 4]))
    b = gru(x, lengths=[2, 6, 4])
    c = gru(x, lengths=torch.tensor([2, 6, 4], dtype=torch.int32))
    assert torch.equal(a[0], b[0]) and torch.equal(a[0], c[0])
    # each sequence computed alone, truncated to its length, gives the same h_n
    for i, n in enumerate([2, 6, 4]):
        out_i, h_i = gru(x[:n, i : i + 1])
        assert (h_i[:, 0] - a[1][:, i]).abs().max() <= 1e-12
        assert (out_i[:, 0] - a[0][:n, i]).abs().max() <= 1e-12


def test_nan_propagates_without_crashing():
    gru = grukit.GRU(3, 4)
    x = torch.randn(5, 2, 3)
    x[2, 0, 1] = float("nan")
    out, h = gru(x)
    assert (
        torch.isnan(out[2:, 0]).all()
        and not torch.isnan(out[:, 1]).any()
        and not torch.isnan(out[:2]).any()
    )


def test_bfloat16_computes_close_to_fp32():
    g32 = randomize(grukit.GRU(4, 8, 2))
    g16 = grukit.GRU(4, 8, 2, dtype=torch.bfloat16)
    g16.load_state_dict({k: v.to(torch.bfloat16) for k, v in g32.state_dict().items()})
    x = torch.randn(10, 3, 4)
    out16, h16 = g16(x.to(torch.bfloat16))
    assert out16.dtype == torch.bfloat16 and h16.dtype == torch.bfloat16
    out32, _ = g32(x)
    assert (out16.float() - out32).abs().max() < 0.05
    cell = grukit.GRUCell(4, 8, dtype=torch.bfloat16)
    assert cell(torch.randn(2, 4, dtype=torch.bfloat16)).dtype == torch.bfloat16
