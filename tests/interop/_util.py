"""Helpers for the interop tests: random non-zero weights in every framework, and running each one's forward."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import functools

import numpy as np
import support
import torch

import grukit

TOL = 1e-5  # fp32 outputs (docs/conventions.md)


#: Every parameter, biases included, random and non-zero (uniform on (-0.6, 0.6)): a swapped gate or bias
#: cannot hide. ``randomize(module, seed=0)``; the shared randomiser of tests/support.py.
randomize = functools.partial(support.randomize, scale=0.6, dist="uniform")


def keras_mod():
    import keras

    assert keras.backend.backend() == "torch"
    return keras


def randomize_keras(kmodel, seed: int = 0, scale: float = 0.6):
    """Random values for every Keras weight (kernels and biases)."""
    rng = np.random.default_rng(seed)
    for w in kmodel.weights:
        w.assign((rng.uniform(-1, 1, tuple(w.shape)) * scale).astype(w.dtype))
    return kmodel


def keras_forward(kmodel, x: np.ndarray) -> np.ndarray:
    """The Keras model's own forward pass on x (B, T, I)."""
    keras = keras_mod()
    return np.asarray(keras.ops.convert_to_numpy(kmodel(x)))


def keras_stack(
    input_size: int,
    units: int,
    num_layers: int,
    bidirectional: bool,
    reset_after: bool,
    use_bias: bool = True,
    seed: int = 0,
):
    """A built Keras Sequential of GRU (or Bidirectional(GRU)) layers with random weights, return_sequences."""
    keras = keras_mod()
    layers = [keras.Input((None, input_size))]
    for _ in range(num_layers):
        gru = keras.layers.GRU(
            units, return_sequences=True, reset_after=reset_after, use_bias=use_bias
        )
        layers.append(keras.layers.Bidirectional(gru) if bidirectional else gru)
    return randomize_keras(keras.Sequential(layers), seed)


def ort_run(path, feeds: dict) -> list:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def maxdiff(a, b) -> float:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def gru_out(
    model: grukit.GRU, x_bf: torch.Tensor, h0=None, lengths=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """grukit's (output (B, T, D·H), h_n) for batch-first x, whatever model.batch_first is."""
    x = x_bf if model.batch_first else x_bf.transpose(0, 1)
    with torch.no_grad():
        out, h = model(x, h0, lengths=lengths)
    return (out if model.batch_first else out.transpose(0, 1)), h
