"""grukit.GRU against the float64 NumPy reference across the configuration grid (fp64, ≤1e-10)."""

import itertools

import numpy as np
import pytest
import torch
from support import randomize

import grukit

from ._util import reference_of

T, B, I, H = 5, 3, 4, 3
GRID = list(
    itertools.product(
        [True, False], [1, 2, 3], [False, True], [False, True], [False, True], [True, False]
    )
)


@pytest.mark.parametrize("reset_after,layers,bidir,batch_first,use_lengths,bias", GRID)
def test_matches_reference(reset_after, layers, bidir, batch_first, use_lengths, bias):
    gru = randomize(
        grukit.GRU(
            I,
            H,
            layers,
            bias=bias,
            batch_first=batch_first,
            bidirectional=bidir,
            reset_after=reset_after,
            dtype=torch.float64,
        )
    )
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=torch.float64)
    D = 2 if bidir else 1
    h0 = torch.randn(layers * D, B, H, dtype=torch.float64)
    lengths = [5, 2, 4] if use_lengths else None
    out, h_n, gates = gru(x, h0, lengths=lengths, return_gates=True)
    ref_out, ref_h, ref_gates = reference_of(gru, x, h0, lengths)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=0, atol=1e-10)
    np.testing.assert_allclose(h_n.detach().numpy(), ref_h, rtol=0, atol=1e-10)
    # gates: reference (L, D, 3, T, B, H) in order z, r, n
    for k, name in enumerate("zrn"):
        got = getattr(gates, name).detach().numpy()
        assert got.shape == (layers, D, T, B, H)
        np.testing.assert_allclose(got, ref_gates[:, :, k], rtol=0, atol=1e-10)
    if use_lengths:  # outputs past each sequence's end are exactly zero
        o = out if not batch_first else out.transpose(0, 1)
        assert torch.all(o[2:, 1] == 0) and torch.all(o[4:, 2] == 0)


def test_h0_none_equals_zeros():
    gru = randomize(grukit.GRU(I, H, 2, bidirectional=True, dtype=torch.float64))
    x = torch.randn(T, B, I, dtype=torch.float64)
    out_none, h_none = gru(x)
    out_zero, h_zero = gru(x, torch.zeros(4, B, H, dtype=torch.float64))
    assert torch.equal(out_none, out_zero) and torch.equal(h_none, h_zero)
    ref_out, _, _ = reference_of(gru, x)
    np.testing.assert_allclose(out_none.detach().numpy(), ref_out, atol=1e-10, rtol=0)


def test_reset_placements_differ():
    """The two placements are different models: same weights, different outputs (the test can fail)."""
    a = randomize(grukit.GRU(I, H, dtype=torch.float64, reset_after=True))
    b = randomize(grukit.GRU(I, H, dtype=torch.float64, reset_after=False))
    x = torch.randn(T, B, I, dtype=torch.float64)
    assert (a(x)[0] - b(x)[0]).abs().max() > 1e-3


def test_cell_matches_reference():
    from grukit import reference

    for reset_after in (True, False):
        cell = randomize(grukit.GRUCell(I, H, reset_after=reset_after, dtype=torch.float64))
        x, h = torch.randn(B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
        p = {k: v.detach().numpy() for k, v in cell.state_dict().items()}
        ref, _ = reference.gru_cell(
            x.numpy(),
            h.numpy(),
            p["weight_ih"],
            p["weight_hh"],
            p["bias_ih"],
            p["bias_hh"],
            reset_after,
        )
        np.testing.assert_allclose(cell(x, h).detach().numpy(), ref, atol=1e-12, rtol=0)
        # unbatched
        np.testing.assert_allclose(cell(x[0], h[0]).detach().numpy(), ref[0], atol=1e-12, rtol=0)
