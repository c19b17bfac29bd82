"""Every bad input raises a clear ValueError / TypeError naming what was expected and what was got."""

import pytest
import torch

import grukit


@pytest.fixture
def gru():
    return grukit.GRU(4, 3, 2)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda g: g(torch.randn(5)), ValueError, "got 1 dimensions"),
        (lambda g: g(torch.randn(2, 2, 2, 4)), ValueError, "got 4 dimensions"),
        (
            lambda g: g(torch.randn(5, 2, 7)),
            ValueError,
            "expected input of size 4 in its last dimension, got 7",
        ),
        (
            lambda g: g(torch.randn(5, 2, 4), torch.randn(1, 2, 3)),
            ValueError,
            r"expected hx of shape \(2, 2, 3\)",
        ),
        (lambda g: g(torch.randn(5, 2, 4), torch.randn(2, 3, 3)), ValueError, r"got \(2, 3, 3\)"),
        (lambda g: g(torch.randn(5, 2, 4), lengths=[5]), ValueError, "expected 2, got 1"),
        (lambda g: g(torch.randn(5, 2, 4), lengths=[5, 0]), ValueError, "at least 1, got 0"),
        (
            lambda g: g(torch.randn(5, 2, 4), lengths=[6, 2]),
            ValueError,
            "at most the sequence length T=5, got 6",
        ),
        (lambda g: g(torch.randn(5, 2, 4), lengths=torch.tensor([2.0, 3.0])), TypeError, "integer"),
        (lambda g: g(torch.randn(5, 2, 4), lengths=[2.5, 3]), TypeError, "integers"),
        (lambda g: g(torch.randn(5, 2, 4), lengths=torch.tensor([[2, 3]])), ValueError, "1-D"),
        (
            lambda g: g(torch.randn(5, 2, 4, dtype=torch.float64)),
            TypeError,
            "dtype torch.float32.*got torch.float64",
        ),
        (
            lambda g: g(torch.randn(5, 2, 4), torch.randn(2, 2, 3, dtype=torch.float64)),
            TypeError,
            "hx of dtype",
        ),
        (lambda g: g(torch.ones(5, 2, 4, dtype=torch.int64)), TypeError, "dtype"),
        (lambda g: g([[1.0, 2.0]]), TypeError, "torch.Tensor, got list"),
        (lambda g: g.step(torch.randn(2, 5)), ValueError, "size 4 in its last dimension, got 5"),
        (
            lambda g: g.step(torch.randn(2, 4), torch.randn(2, 3)),
            ValueError,
            "expected hx of shape",
        ),
    ],
)
def test_bad_inputs(gru, call, exc, match):
    with pytest.raises(exc, match=match):
        call(gru)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"input_size": 0, "hidden_size": 3}, ValueError, "input_size must be positive, got 0"),
        ({"input_size": 4, "hidden_size": 2.5}, TypeError, "hidden_size must be an int"),
        ({"input_size": 4, "hidden_size": 3, "num_layers": 0}, ValueError, "num_layers"),
        ({"input_size": 4, "hidden_size": 3, "dropout": 1.5}, ValueError, "dropout must be in"),
        (
            {"input_size": 4, "hidden_size": 3, "backend": "cuda"},
            ValueError,
            "backend must be one of",
        ),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        grukit.GRU(**kwargs)


def test_cell_bad_inputs():
    cell = grukit.GRUCell(4, 3)
    with pytest.raises(ValueError, match="size 4 in its last dimension, got 2"):
        cell(torch.randn(2, 2))
    with pytest.raises(ValueError, match=r"expected hx of shape \(2, 3\), got \(2, 4\)"):
        cell(torch.randn(2, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="1 dimension"):
        cell(torch.randn(1, 2, 4))


def test_packed_and_lengths_together_rejected():
    gru = grukit.GRU(4, 3)
    p = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(3, 2, 4), [3, 2])
    with pytest.raises(ValueError, match="both a PackedSequence and lengths"):
        gru(p, lengths=[3, 2])


def test_backend_fused_requested_but_ineligible_raises():
    """Forcing the fused path where it cannot run (here: gate introspection or float16) raises."""
    gru = grukit.GRU(4, 3, backend="fused", dtype=torch.float16)
    with pytest.raises(ValueError, match="backend='fused' cannot run this call"):
        gru(torch.randn(2, 1, 4, dtype=torch.float16))
