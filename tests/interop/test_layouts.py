"""The layout table against an independent statement of it: Keras' own torch-backend weight preparation."""

import numpy as np
import pytest
import torch

from grukit.interop._layouts import LAYOUTS, from_framework, reorder_gates, to_framework

from ._util import keras_mod


def test_reorder_is_a_permutation_of_gate_blocks():
    a = np.repeat(np.array([0.0, 1.0, 2.0]), 2)  # torch blocks r=0, z=1, n=2 of size H=2
    np.testing.assert_array_equal(reorder_gates(a, "torch", "keras"), [1, 1, 0, 0, 2, 2])  # z, r, n
    np.testing.assert_array_equal(reorder_gates(a, "torch", "onnx"), [1, 1, 0, 0, 2, 2])
    np.testing.assert_array_equal(
        reorder_gates(reorder_gates(a, "torch", "onnx"), "onnx", "torch"), a
    )
    with pytest.raises(ValueError, match="3H"):
        reorder_gates(np.zeros(7), "torch", "keras")


@pytest.mark.parametrize("fw", sorted(LAYOUTS))
def test_to_and_from_are_inverse(fw):
    rng = np.random.default_rng(0)
    w_ih, w_hh, b_ih, b_hh = (
        rng.normal(size=(12, 3)),
        rng.normal(size=(12, 4)),
        rng.normal(size=12),
        rng.normal(size=12),
    )
    back = from_framework(*to_framework(w_ih, w_hh, b_ih, b_hh, fw), fw)
    for a, b in zip(back, (w_ih, w_hh, b_ih, b_hh)):
        np.testing.assert_array_equal(a, b)


def test_keras_layout_matches_keras_own_conversion():
    keras_mod()
    from keras.src.backend.torch.rnn import (
        prepare_gru_params,
    )  # Keras' own Keras → torch reordering

    rng = np.random.default_rng(1)
    kernel, rec, bias = rng.normal(size=(3, 15)), rng.normal(size=(5, 15)), rng.normal(size=(2, 15))
    theirs = prepare_gru_params(torch.tensor(kernel), torch.tensor(rec), torch.tensor(bias), "cpu")
    ours = from_framework(kernel, rec, bias[0], bias[1], "keras")
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b.numpy())
