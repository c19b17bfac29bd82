"""torch.nn.GRU's leftovers: flatten_parameters, all_weights, _flat_weights(_names), T=0, error classes."""

from __future__ import annotations

import pytest
import torch

import grukit
from grukit.errors import ShapeError


@pytest.mark.parametrize(
    "kw", [{}, {"num_layers": 3, "bidirectional": True}, {"bias": False, "num_layers": 2}]
)
def test_flat_weights_match_torch(kw):
    ref = torch.nn.GRU(3, 4, **kw)
    ours = grukit.from_torch(ref)
    assert ours._flat_weights_names == ref._flat_weights_names
    assert len(ours._flat_weights) == len(ref._flat_weights)
    for a, b in zip(ours._flat_weights, ref._flat_weights):
        assert a.shape == b.shape and torch.equal(a, b)
    assert [len(w) for w in ours.all_weights] == [len(w) for w in ref.all_weights]
    for la, lb in zip(ours.all_weights, ref.all_weights):
        assert all(torch.equal(a, b) for a, b in zip(la, lb))
    assert ours.flatten_parameters() is None  # a no-op, as on CPU in torch
    assert ours._flat_weights[0] is ours.weight_ih_l0  # the parameters themselves, not copies


def test_zero_length_sequence_raises_like_torch():
    ref, ours = torch.nn.GRU(3, 4), grukit.GRU(3, 4)
    x = torch.zeros(0, 2, 3)
    with pytest.raises(RuntimeError):
        ref(x)
    with pytest.raises(RuntimeError, match="larger than 0"):
        ours(x)
    with pytest.raises(ValueError, match="larger than 0"):
        grukit.GRU(3, 4, batch_first=True)(torch.zeros(2, 0, 3))
    with pytest.raises(ShapeError):
        grukit.MinGRU(3, 4)(x)


@pytest.mark.parametrize(
    "call, torch_error",
    [
        (lambda m: m(torch.randn(5, 2, 7)), RuntimeError),  # wrong input size
        (lambda m: m(torch.randn(5, 2, 3), torch.zeros(1, 3, 4)), RuntimeError),  # wrong hx batch
        (lambda m: m(torch.randn(5, 2, 3, 1)), ValueError),  # wrong rank
        (lambda m: m.step(torch.randn(2, 7)), None),  # torch.nn.GRU has no step
    ],
)
def test_shape_errors_are_value_and_runtime_errors(call, torch_error):
    """Where torch raises RuntimeError (and grukit used to raise ValueError), both keep working."""
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, RuntimeError)
    for m in (grukit.GRU(3, 4), grukit.MinGRU(3, 4)):
        for cls in (ShapeError, RuntimeError, ValueError):
            with pytest.raises(cls):
                call(m)
    if torch_error is not None:
        with pytest.raises(torch_error):
            call(torch.nn.GRU(3, 4))
