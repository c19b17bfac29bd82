"""The issue's round trips, each hop checked against the real library's own forward pass (≤ 1e-5)."""

import numpy as np
import pytest
import torch

import grukit

from ._util import TOL, gru_out, keras_forward, keras_stack, maxdiff, ort_run, randomize

SHAPES = [(1, False), (2, True)]


@pytest.mark.parametrize("num_layers,bidirectional", SHAPES)
def test_torch_keras_grukit_onnx_grukit_reset_after(tmp_path, num_layers, bidirectional):
    src = randomize(
        torch.nn.GRU(3, 5, num_layers, batch_first=True, bidirectional=bidirectional), seed=11
    ).eval()
    x = torch.randn(3, 6, 3)
    with torch.no_grad():
        want = src(x)[0]  # torch's own forward

    kmodel = grukit.to_keras(src)  # torch → Keras
    assert maxdiff(keras_forward(kmodel, x.numpy()), want) <= TOL

    model = grukit.from_keras(kmodel)  # Keras → grukit
    assert model.reset_after
    assert maxdiff(gru_out(model, x)[0], want) <= TOL

    path = grukit.export_onnx(model, tmp_path / "m.onnx")  # grukit → ONNX (batch-first graph)
    (y_ort, _) = ort_run(path, {"input": x.numpy()})
    assert maxdiff(y_ort, want) <= TOL

    back = grukit.from_onnx(path)  # ONNX → grukit
    assert maxdiff(gru_out(back, x)[0], want) <= TOL
    for k, v in src.state_dict().items():  # weights survive the whole trip
        assert maxdiff(back.state_dict()[k], v) <= 1e-7


@pytest.mark.parametrize("num_layers,bidirectional", SHAPES)
def test_keras_grukit_onnx_grukit_keras_reset_before(tmp_path, num_layers, bidirectional):
    src = keras_stack(3, 5, num_layers, bidirectional, reset_after=False, seed=12)
    x = np.random.default_rng(3).standard_normal((3, 6, 3)).astype(np.float32)
    want = keras_forward(src, x)  # Keras' own forward

    model = grukit.from_keras(src)  # Keras → grukit
    assert not model.reset_after
    assert maxdiff(gru_out(model, torch.from_numpy(x))[0], want) <= TOL

    path = grukit.export_onnx(model, tmp_path / "m.onnx")  # grukit → ONNX, linear_before_reset=0
    assert maxdiff(ort_run(path, {"input": x})[0], want) <= TOL

    back = grukit.from_onnx(path)  # ONNX → grukit
    assert not back.reset_after
    assert maxdiff(gru_out(back, torch.from_numpy(x))[0], want) <= TOL

    again = grukit.to_keras(back)  # grukit → Keras
    assert maxdiff(keras_forward(again, x), want) <= TOL
    for a, b in zip(src.weights, again.weights):
        assert a.shape == b.shape
        np.testing.assert_allclose(np.asarray(b.numpy()), np.asarray(a.numpy()), atol=1e-7)
