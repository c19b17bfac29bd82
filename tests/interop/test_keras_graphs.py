"""Keras models that are not one plain stack: imported so that they compute what Keras computes, or refused.

Every expected value is Keras' own forward pass (torch backend) on the same input.
"""

import numpy as np
import pytest
import torch

import grukit
from grukit.interop.chain import GRUChain

from ._util import TOL, keras_mod, maxdiff, randomize_keras


def _np(t):
    keras = keras_mod()
    return np.asarray(keras.ops.convert_to_numpy(t))


def _x(seed=0, B=3, T=6, I=3):
    return np.random.default_rng(seed).standard_normal((B, T, I)).astype(np.float32)


def _model(layers, seed=0, I=3):
    keras = keras_mod()
    inp = keras.Input((None, I))
    y = inp
    for layer in layers:
        y = layer(y)
    return randomize_keras(keras.Model(inp, y), seed)


def _ours(model, x, lengths=None):
    with torch.no_grad():
        return model(torch.from_numpy(x), lengths=lengths)


@pytest.mark.parametrize("merge", ["sum", "mul", "ave", "concat", None])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("reset_after", [True, False])
def test_bidirectional_merge_modes_match_keras(merge, return_sequences, reset_after):
    keras = keras_mod()
    gru = keras.layers.GRU(4, return_sequences=return_sequences, reset_after=reset_after)
    kmodel = _model([keras.layers.Bidirectional(gru, merge_mode=merge)], seed=1)
    x = _x()
    model = grukit.from_keras(kmodel)
    if merge == "concat":
        assert isinstance(model, grukit.GRU)  # the plain case stays a plain GRU
        out, h_n = _ours(model, x)
        want = _np(kmodel(x))
        got = out if return_sequences else torch.cat([h_n[0], h_n[1]], -1)
        assert maxdiff(got, want) <= TOL
        return
    assert isinstance(model, GRUChain)
    out, h_n = _ours(model, x)
    want = kmodel(x)
    if merge is None:
        assert isinstance(out, tuple) and len(out) == 2
        for a, b in zip(out, want):
            assert maxdiff(a, _np(b)) <= TOL
    else:
        assert maxdiff(out, _np(want)) <= TOL


@pytest.mark.parametrize("return_sequences", [True, False])
def test_go_backwards_single_layer_matches_keras(return_sequences):
    keras = keras_mod()
    kmodel = _model(
        [keras.layers.GRU(5, return_sequences=return_sequences, go_backwards=True)], seed=2
    )
    x = _x(1)
    model = grukit.from_keras(kmodel)
    assert isinstance(model, GRUChain)
    out, h_n = _ours(model, x)
    assert (
        maxdiff(out, _np(kmodel(x))) <= TOL
    )  # Keras' own time order (reversed), no flip by the user
    assert maxdiff(h_n[0], _np(kmodel(x)) if not return_sequences else _np(kmodel(x))[:, -1]) <= TOL


def test_go_backwards_inside_a_stack_and_return_state():
    keras = keras_mod()
    layers = [
        keras.layers.GRU(4, return_sequences=True),
        keras.layers.GRU(4, return_sequences=True, go_backwards=True),
        keras.layers.Bidirectional(
            keras.layers.GRU(4, return_sequences=True, return_state=True), merge_mode="ave"
        ),
    ]
    kmodel = _model(layers, seed=3)
    x = _x(2)
    y, h_fw, h_bw = (_np(t) for t in kmodel(x))
    model = grukit.from_keras(kmodel)
    out, h_n = _ours(model, x)
    assert tuple(h_n.shape) == (4, 3, 4)
    assert maxdiff(out, y) <= TOL
    assert maxdiff(h_n[2], h_fw) <= TOL and maxdiff(h_n[3], h_bw) <= TOL


def test_mixed_options_become_a_chain_that_matches():
    keras = keras_mod()
    layers = [
        keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True, reset_after=False)),
        keras.layers.GRU(4, return_sequences=True, use_bias=False),
    ]
    kmodel = _model(layers, seed=4)
    x = _x(3)
    model = grukit.from_keras(kmodel)
    assert isinstance(model, GRUChain)
    assert maxdiff(_ours(model, x)[0], _np(kmodel(x))) <= TOL


def test_functional_chain_is_followed_in_data_order():
    """A plain functional chain is imported by following its tensors (here: one plain 2-layer GRU)."""
    keras = keras_mod()
    inp = keras.Input((None, 3))
    g1 = keras.layers.GRU(4, return_sequences=True, name="first")
    g2 = keras.layers.GRU(4, return_sequences=True, name="second")
    kmodel = randomize_keras(keras.Model(inp, g2(g1(inp))), seed=5)
    x = _x(4)
    model = grukit.from_keras(kmodel)
    assert isinstance(model, grukit.GRU) and model.num_layers == 2
    assert maxdiff(_ours(model, x)[0], _np(kmodel(x))) <= TOL


def test_parallel_gru_branches_are_refused():
    keras = keras_mod()
    inp = keras.Input((None, 3))
    a = keras.layers.GRU(4, return_sequences=True, name="left")(inp)
    b = keras.layers.GRU(4, return_sequences=True, name="right")(inp)
    added = keras.Model(inp, keras.layers.Add(name="plus")([a, b]))
    with pytest.raises(ValueError, match="'plus'.*not one chain"):
        grukit.from_keras(added)
    both = keras.Model(inp, [a, b])
    with pytest.raises(ValueError, match="outputs from 2 layers"):
        grukit.from_keras(both)
    concat = keras.Model(inp, keras.layers.Concatenate(name="cat")([a, b]))
    with pytest.raises(ValueError, match="'cat'"):
        grukit.from_keras(concat)


def test_a_layer_reading_a_state_or_an_initial_state_is_refused():
    keras = keras_mod()
    inp = keras.Input((None, 3))
    seq, state = keras.layers.GRU(4, return_sequences=True, return_state=True)(inp)
    y = keras.layers.GRU(4, return_sequences=True, name="top")(seq, initial_state=state)
    with pytest.raises(ValueError, match="'top'.*reads 2 tensors"):
        grukit.from_keras(keras.Model(inp, y))


def test_head_after_the_gru_is_refused():
    keras = keras_mod()
    inp = keras.Input((None, 3))
    y = keras.layers.Dense(2, name="head")(keras.layers.GRU(4, return_sequences=True)(inp))
    with pytest.raises(TypeError, match="Dense"):
        grukit.from_keras(keras.Model(inp, y))


def test_chain_save_load_round_trip(tmp_path):
    keras = keras_mod()
    gru = keras.layers.GRU(4, return_sequences=True)
    kmodel = _model([keras.layers.Bidirectional(gru, merge_mode="sum")], seed=6)
    model = grukit.from_keras(kmodel)
    grukit.save(model, tmp_path / "chain.safetensors")
    back = grukit.load(tmp_path / "chain.safetensors")
    assert isinstance(back, GRUChain) and back.config == model.config
    x = _x(5)
    assert maxdiff(_ours(back, x)[0], _np(kmodel(x))) <= TOL


def test_chain_lengths_flip_only_the_valid_part():
    """With lengths, each direction sees exactly the sequence cut to its length (checked against Keras
    run on each cut sequence alone)."""
    keras = keras_mod()
    gru = keras.layers.GRU(4, return_sequences=True)
    kmodel = _model([keras.layers.Bidirectional(gru, merge_mode="sum")], seed=7)
    model = grukit.from_keras(kmodel)
    x = _x(6, B=3, T=7)
    lengths = torch.tensor([7, 3, 5])
    out, _ = _ours(model, x, lengths)
    for b, n in enumerate(lengths.tolist()):
        want = _np(kmodel(x[b : b + 1, :n]))[0]
        assert maxdiff(out[b, :n], want) <= TOL
        assert float(out[b, n:].abs().max() if n < 7 else 0.0) == 0.0
