"""gradcheck / gradgradcheck in float64 through the layer (inputs, h0 and every weight)."""

import pytest
import torch
from support import randomize
from torch.autograd import gradcheck, gradgradcheck

import grukit


def _fn(gru, lengths):
    names = [n for n, _ in gru.named_parameters()]

    def f(x, h0, *params):
        out, h_n = torch.func.functional_call(
            gru, dict(zip(names, params)), (x, h0), {"lengths": lengths}
        )
        return out, h_n

    return f


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize(
    "bidir,lengths", [(False, None), pytest.param(True, [3, 1], marks=pytest.mark.slow)]
)
def test_gradcheck_and_gradgradcheck(backend, reset_after, bidir, lengths):
    gru = randomize(
        grukit.GRU(
            3,
            2,
            2,
            bidirectional=bidir,
            reset_after=reset_after,
            dtype=torch.float64,
            backend=backend,
        )
    )
    D = 2 if bidir else 1
    x = torch.randn(3, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2 * D, 2, 2, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in gru.parameters()]
    f = _fn(gru, lengths)
    assert gradcheck(f, (x, h0, *params), eps=1e-6, atol=1e-7)
    assert gradgradcheck(f, (x, h0, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("reset_after", [True, False])
def test_cell_gradcheck(backend, reset_after):
    cell = randomize(
        grukit.GRUCell(3, 4, reset_after=reset_after, dtype=torch.float64, backend=backend)
    )
    names = [n for n, _ in cell.named_parameters()]
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]

    def f(x, h, *ps):
        return torch.func.functional_call(cell, dict(zip(names, ps)), (x, h))

    assert gradcheck(f, (x, h, *params))
    assert gradgradcheck(f, (x, h, *params))
