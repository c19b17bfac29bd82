"""Keras 3 GRU ↔ grukit, every direction checked against the Keras layer's own forward pass (torch backend)."""

import warnings

import numpy as np
import pytest
import torch

import grukit

from ._util import TOL, gru_out, keras_forward, keras_mod, keras_stack, maxdiff, randomize

CASES = [(1, False), (2, True), (2, False)]


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("num_layers,bidirectional", CASES)
def test_from_keras_matches_keras_forward(reset_after, num_layers, bidirectional):
    kmodel = keras_stack(3, 5, num_layers, bidirectional, reset_after, seed=num_layers)
    model = grukit.from_keras(kmodel)
    assert (model.num_layers, model.bidirectional, model.reset_after, model.batch_first) == (
        num_layers,
        bidirectional,
        reset_after,
        True,
    )
    x = np.random.default_rng(0).standard_normal((3, 6, 3)).astype(np.float32)
    assert maxdiff(gru_out(model, torch.from_numpy(x))[0], keras_forward(kmodel, x)) <= TOL


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("num_layers,bidirectional", CASES)
def test_to_keras_matches_grukit_forward(reset_after, num_layers, bidirectional):
    model = randomize(
        grukit.GRU(3, 5, num_layers, bidirectional=bidirectional, reset_after=reset_after)
    ).eval()
    kmodel = grukit.to_keras(model)
    x = torch.randn(3, 6, 3)
    assert maxdiff(keras_forward(kmodel, x.numpy()), gru_out(model, x)[0]) <= TOL
    last = grukit.to_keras(model, return_sequences=False)  # top layer's last state per direction
    D, h_n = model.num_directions, gru_out(model, x)[1]
    want = torch.cat([h_n[-D + d] for d in range(D)], -1)
    assert maxdiff(keras_forward(last, x.numpy()), want) <= TOL


def test_to_keras_of_a_bf16_quantized_model():
    """The Keras layer gets the bf16-rounded weights as float32: Keras computes what the quantized model does."""
    model = randomize(grukit.GRU(3, 5, 2)).eval()
    x = torch.randn(3, 6, 3)
    y32 = gru_out(model, x)[0]
    q = grukit.quantize(model, "bf16")
    y_ref = gru_out(q, x)[0]
    assert maxdiff(y_ref, y32) > 10 * TOL
    assert maxdiff(keras_forward(grukit.to_keras(q), x.numpy()), y_ref) <= TOL


def test_without_bias_both_placements():
    for reset_after in (True, False):
        kmodel = keras_stack(3, 4, 1, False, reset_after, use_bias=False)
        model = grukit.from_keras(kmodel)
        assert not model.bias
        x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
        assert maxdiff(gru_out(model, torch.from_numpy(x))[0], keras_forward(kmodel, x)) <= TOL
        assert maxdiff(keras_forward(grukit.to_keras(model), x), keras_forward(kmodel, x)) <= TOL


def test_single_layer_with_initial_state():
    keras = keras_mod()
    layer = keras.layers.GRU(4, return_sequences=True, return_state=True, reset_after=True)
    x = np.random.default_rng(2).standard_normal((2, 5, 3)).astype(np.float32)
    h0 = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    layer(x)  # build
    rng = np.random.default_rng(4)
    for w in layer.weights:
        w.assign(rng.uniform(-0.6, 0.6, tuple(w.shape)).astype("float32"))
    y, h = (np.asarray(keras.ops.convert_to_numpy(t)) for t in layer(x, initial_state=[h0]))
    model = grukit.from_keras(layer)
    out, h_n = gru_out(model, torch.from_numpy(x), torch.from_numpy(h0)[None])
    assert maxdiff(out, y) <= TOL and maxdiff(h_n[0], h) <= TOL


def test_keras_file_path(tmp_path):
    kmodel = keras_stack(3, 4, 2, True, False, seed=7)
    path = tmp_path / "m.keras"
    kmodel.save(path)
    model = grukit.from_keras(path)
    x = np.random.default_rng(5).standard_normal((2, 6, 3)).astype(np.float32)
    assert maxdiff(gru_out(model, torch.from_numpy(x))[0], keras_forward(kmodel, x)) <= TOL


def test_go_backwards_layer_computes_what_keras_computes():
    """No warning and no flip left to the user: the imported chain returns Keras' output on the same x."""
    keras = keras_mod()
    layer = keras.layers.GRU(4, return_sequences=True, go_backwards=True)
    x = np.random.default_rng(6).standard_normal((2, 5, 3)).astype(np.float32)
    layer(x)
    rng = np.random.default_rng(8)
    for w in layer.weights:
        w.assign(rng.uniform(-0.6, 0.6, tuple(w.shape)).astype("float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model = grukit.from_keras(layer)
    with torch.no_grad():
        out, _ = model(torch.from_numpy(x))
    assert maxdiff(out, keras_forward(layer, x)) <= TOL


def test_clear_errors(tmp_path):
    keras = keras_mod()
    bad_act = keras.layers.GRU(4, activation="relu")
    bad_act(np.zeros((1, 2, 3), "float32"))
    with pytest.raises(ValueError, match="activation"):
        grukit.from_keras(bad_act)
    with pytest.raises(ValueError, match="build it first"):
        grukit.from_keras(keras.layers.GRU(4))
    mixed = keras.Sequential([keras.Input((None, 3)), keras.layers.GRU(4), keras.layers.Dense(2)])
    with pytest.raises(TypeError, match="Dense"):
        grukit.from_keras(mixed)
    uneven = keras.Sequential(
        [keras.Input((None, 3)), keras.layers.GRU(4, return_sequences=True), keras.layers.GRU(5)]
    )
    with pytest.raises(ValueError, match="same units"):
        grukit.from_keras(uneven)
    odd = keras.layers.Bidirectional(
        keras.layers.GRU(4, return_sequences=True),
        backward_layer=keras.layers.GRU(
            4, return_sequences=True, go_backwards=True, reset_after=False
        ),
    )
    odd(np.zeros((1, 2, 3), "float32"))
    x = np.random.default_rng(1).standard_normal((2, 4, 3)).astype(np.float32)
    odd.set_weights(
        [w * 0 + 0.3 * np.sin(np.arange(w.size)).reshape(w.shape) for w in odd.get_weights()]
    )
    odd_model = grukit.from_keras(odd)  # directions with different reset placement: a chain, exact
    assert isinstance(odd_model, grukit.interop.chain.GRUChain)
    with torch.no_grad():
        assert maxdiff(odd_model(torch.from_numpy(x))[0], keras_forward(odd, x)) <= TOL
    with pytest.raises(grukit.errors.UserInputError, match="not found"):
        grukit.from_keras(tmp_path / "missing.keras")
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(grukit.errors.UserInputError, match="not a loadable Keras model"):
        grukit.from_keras(junk)
    with pytest.raises(ValueError, match="zoneout"):
        grukit.to_keras(grukit.GRU(3, 4, zoneout=0.1))


def test_gru_layers_taken_from_a_list():
    keras = keras_mod()
    kmodel = keras_stack(3, 4, 2, False, True, seed=3)
    head = keras.layers.Dense(2)
    full = keras.Sequential(list(kmodel.layers) + [head])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model = grukit.from_keras(full.layers[:2])
    x = np.random.default_rng(9).standard_normal((2, 4, 3)).astype(np.float32)
    assert maxdiff(gru_out(model, torch.from_numpy(x))[0], keras_forward(kmodel, x)) <= TOL


@pytest.mark.slow
def test_keras_backend_is_chosen_or_the_failure_is_explained():
    """Without KERAS_BACKEND grukit selects torch; a backend that cannot import gives a clear ImportError."""
    import importlib.util
    import os
    import subprocess
    import sys

    code = (
        "import grukit, sys\n"
        "try:\n"
        "    grukit.to_keras(grukit.GRU(3, 4))\n"
        "except ImportError as e:\n"
        "    print('IMPORTERROR', e); sys.exit(0)\n"
        "import keras; print('BACKEND', keras.backend.backend())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert "BACKEND torch" in r.stdout, r.stderr[-2000:]
    if importlib.util.find_spec("tensorflow") is None:
        r = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "KERAS_BACKEND": "tensorflow"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert "IMPORTERROR" in r.stdout and "KERAS_BACKEND='tensorflow'" in r.stdout, (
            r.stdout + r.stderr[-2000:]
        )
    else:  # with TensorFlow installed that backend works and is kept
        r = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "KERAS_BACKEND": "tensorflow"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert "BACKEND tensorflow" in r.stdout, r.stderr[-2000:]


@pytest.mark.parametrize("reset_after", [True, False])
def test_float64_round_trip(reset_after):
    """fp64 end to end. Keras' own reset_after=False forward (its generic RNN loop) lands ~3e-8 from the
    float64 answer in fp64 (measured), so that placement is held to the fp32 tolerance on the Keras side."""
    model = randomize(
        grukit.GRU(3, 4, 2, bidirectional=True, reset_after=reset_after, dtype=torch.float64)
    ).eval()
    kmodel = grukit.to_keras(model)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    y = keras_forward(kmodel, x.numpy())
    assert y.dtype == np.float64
    assert maxdiff(y, gru_out(model, x)[0]) <= (1e-10 if reset_after else TOL)
    back = grukit.from_keras(kmodel)
    assert back.weight_ih_l0.dtype == torch.float64
    assert maxdiff(gru_out(back, x)[0], gru_out(model, x)[0]) <= 1e-10
