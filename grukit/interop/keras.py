"""Keras 3 ``keras.layers.GRU`` ↔ grukit.GRU (weights only; any Keras backend, data moves as NumPy arrays).

Keras stacks gates z, r, n and stores matrices transposed (see ``_layouts``). A Keras GRU with
``reset_after=True`` has a (2, 3H) bias [input row, recurrent row] and maps to grukit ``reset_after=True``;
``reset_after=False`` has one (3H,) input bias (no recurrent bias) and maps to grukit ``reset_after=False``
with ``bias_hh = 0``. Exporting a grukit ``reset_after=False`` model folds ``bias_hh`` into that single row,
which is exact because with the reset gate before the product every bias is a plain sum.

Keras is batch-first, so imported models get ``batch_first=True``: ``keras_model(x)`` equals ``gru(x)[0]``.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserInputError
from ..nn import GRU
from ._layouts import check_plain, from_framework, layer_arrays, set_layer, to_framework


def _keras():
    """Import Keras, selecting the torch backend when Keras has not been imported yet."""
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as e:
        raise ImportError(
            f"Keras interop needs the keras package (pip install 'grukit[interop]') and a working backend; "
            f"importing keras with KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r} failed: {e}"
        ) from e
    return keras


def _np(v) -> np.ndarray:
    keras = _keras()
    return np.asarray(keras.ops.convert_to_numpy(v))


def _is_gru(layer) -> bool:
    keras = _keras()
    return isinstance(layer, keras.layers.GRU)


def _check_gru_layer(layer, where: str) -> None:
    cfg = layer.get_config()
    if cfg.get("activation") != "tanh" or cfg.get("recurrent_activation") != "sigmoid":
        raise ValueError(
            f"{where}: grukit implements activation='tanh' and recurrent_activation='sigmoid', got "
            f"activation={cfg.get('activation')!r}, recurrent_activation={cfg.get('recurrent_activation')!r}"
        )
    if not layer.built or getattr(layer.cell, "kernel", None) is None:
        raise ValueError(
            f"{where}: the Keras layer has no weights yet; build it first (call it on an input or "
            f"give the model an Input)"
        )


def _stack_from(obj) -> list[tuple[object, object | None, str]]:
    """The GRU layers of ``obj`` as (forward layer, backward layer or None, merge_mode) in stacking order."""
    keras = _keras()
    if isinstance(obj, (list, tuple)):
        items = list(obj)
    elif isinstance(obj, keras.Model):
        items = [l for l in obj.layers if not isinstance(l, keras.layers.InputLayer)]
    else:
        items = [obj]
    if not items:
        raise ValueError("from_keras got a Keras model without layers")
    stack = []
    for i, layer in enumerate(items):
        where = f"layer {i} ({getattr(layer, 'name', type(layer).__name__)})"
        if isinstance(layer, keras.layers.Bidirectional):
            fw, bw = layer.forward_layer, layer.backward_layer
            if not (_is_gru(fw) and _is_gru(bw)):
                raise TypeError(
                    f"{where}: expected Bidirectional(GRU), got Bidirectional({type(fw).__name__})"
                )
            if fw.go_backwards or not bw.go_backwards:
                raise ValueError(
                    f"{where}: expected a forward layer reading forwards and a backward layer reading "
                    f"backwards, got go_backwards={fw.go_backwards}/{bw.go_backwards}"
                )
            _check_gru_layer(fw, where)
            _check_gru_layer(bw, where)
            f, b = (
                (fw.cell.units, fw.cell.reset_after, fw.cell.use_bias),
                (bw.cell.units, bw.cell.reset_after, bw.cell.use_bias),
            )
            if f != b:
                raise ValueError(
                    f"{where}: the two directions differ in (units, reset_after, use_bias): {f} vs {b}; "
                    f"grukit's directions share one configuration"
                )
            stack.append((fw, bw, layer.merge_mode))
        elif _is_gru(layer):
            _check_gru_layer(layer, where)
            stack.append((layer, None, "concat"))
        else:
            raise TypeError(
                f"from_keras expected GRU or Bidirectional(GRU) layers only, got {type(layer).__name__} "
                f"at {where}; pass the GRU layers themselves (e.g. a list of model.layers[i])"
            )
    for i, (fw, _bw, merge) in enumerate(stack[:-1]):
        if merge != "concat":
            raise ValueError(
                f"layer {i}: grukit concatenates the two directions; got merge_mode={merge!r}"
            )
        if not fw.return_sequences:
            raise ValueError(
                f"layer {i}: a stacked GRU below the top must have return_sequences=True"
            )
    if stack[-1][2] != "concat":
        warnings.warn(
            f"the top Bidirectional layer has merge_mode={stack[-1][2]!r}; grukit's output concatenates "
            f"the directions instead (the weights are converted exactly)",
            stacklevel=3,
        )
    return stack


def from_keras(obj, backend: str = "auto", batch_first: bool = True) -> GRU:
    """A grukit.GRU with the weights of a Keras GRU stack.

    ``obj``: a ``keras.layers.GRU``, a ``keras.layers.Bidirectional(GRU)``, a Keras model (e.g. Sequential)
    made of such layers, a list of them (stacked in order), or the path of a ``.keras`` file (loaded with
    Keras' ``safe_mode``). All layers need the same ``units``, ``reset_after`` and ``use_bias``, and
    activation tanh / recurrent_activation sigmoid. With ``batch_first=True`` (Keras' own layout),
    ``gru(x)[0]`` for x (B, T, I) equals the Keras output with ``return_sequences=True``.

    A single ``go_backwards=True`` layer (not inside Bidirectional) is imported with a warning: Keras feeds it
    the time-reversed input, so ``keras_layer(x) == gru(x.flip(1))[0]``.
    """
    keras = _keras()
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        if not path.is_file():
            raise UserInputError(f"Keras model file not found: {path}")
        try:
            obj = keras.saving.load_model(str(path), compile=False, safe_mode=True)
        except Exception as e:
            raise UserInputError(
                f"{path} is not a loadable Keras model file ({type(e).__name__}: {e})"
            ) from None
    stack = _stack_from(obj)
    first = stack[0][0]
    units, reset_after, use_bias = first.cell.units, first.cell.reset_after, first.cell.use_bias
    D = 2 if stack[0][1] is not None else 1
    for i, (fw, bw, _) in enumerate(stack):
        got = (fw.cell.units, fw.cell.reset_after, fw.cell.use_bias, 2 if bw is not None else 1)
        if got != (units, reset_after, use_bias, D):
            raise ValueError(
                f"layer {i}: every GRU in the stack needs the same (units, reset_after, use_bias, "
                f"bidirectional); layer 0 has {(units, reset_after, use_bias, D == 2)}, layer {i} has "
                f"{got[:3] + (got[3] == 2,)}"
            )
        if bw is None and fw.go_backwards:
            if len(stack) > 1:
                raise ValueError(
                    f"layer {i}: a go_backwards GRU inside a stack has no grukit equivalent; use "
                    f"Bidirectional or a single layer"
                )
            warnings.warn(
                "the Keras layer has go_backwards=True: it reads the sequence reversed, so "
                "keras_layer(x) equals gru(x.flip(1))[0] (outputs in reversed time order)",
                stacklevel=2,
            )
    input_size = int(_np(first.cell.kernel).shape[0])
    dtype = getattr(torch, str(_np(first.cell.kernel).dtype))
    model = GRU(
        input_size,
        units,
        len(stack),
        bias=use_bias,
        batch_first=batch_first,
        bidirectional=D == 2,
        reset_after=reset_after,
        dtype=dtype,
        backend=backend,
    )
    for k, (fw, bw, _) in enumerate(stack):
        for d, layer in enumerate([fw] if bw is None else [fw, bw]):
            cell = layer.cell
            kernel, rec = _np(cell.kernel), _np(cell.recurrent_kernel)
            b_ih = b_hh = None
            if use_bias:
                bias = _np(cell.bias)
                if reset_after:
                    b_ih, b_hh = bias[0], bias[1]
                else:
                    b_ih, b_hh = bias, np.zeros_like(bias)
            set_layer(model, k, d, *from_framework(kernel, rec, b_ih, b_hh, "keras"))
    return model.eval()


def to_keras(model: nn.Module, return_sequences: bool = True):
    """A ``keras.Sequential`` computing the same function as ``model`` (a grukit.GRU or torch.nn.GRU).

    Layers: ``keras.Input((None, I))``, then per grukit layer a ``keras.layers.GRU`` (wrapped in
    ``Bidirectional(merge_mode="concat")`` when bidirectional). Input is batch-first (B, T, I); with
    ``return_sequences=True`` the output is grukit's ``output`` (B, T, D·H), else the top layer's last output.
    Biases of ``reset_after=False`` models are folded into Keras' single bias row (exact).
    """
    keras = _keras()
    if isinstance(model, nn.GRU):
        from .torch import from_torch

        model = from_torch(model)
    if not isinstance(model, GRU):
        raise TypeError(
            f"to_keras expected a grukit.GRU or torch.nn.GRU, got {type(model).__name__}"
        )
    check_plain(model, "Keras")
    H, D, L = model.hidden_size, model.num_directions, model.num_layers
    dtype = str(model.weight_ih_l0.dtype).replace("torch.", "")
    if dtype not in ("float32", "float64"):
        dtype = "float32"
    layers = [keras.Input((None, model.input_size), dtype=dtype)]
    grus = []
    for k in range(L):
        seq = return_sequences or k < L - 1
        gru = keras.layers.GRU(
            H,
            return_sequences=seq,
            reset_after=model.reset_after,
            use_bias=model.bias,
            dtype=dtype,
            name=f"gru_l{k}",
        )
        if D == 2:
            layers.append(
                keras.layers.Bidirectional(
                    gru, merge_mode="concat", name=f"bidirectional_l{k}", dtype=dtype
                )
            )
        else:
            layers.append(gru)
        grus.append(layers[-1])
    kmodel = keras.Sequential(layers, name="grukit_gru")
    for k, layer in enumerate(grus):
        cells = [layer.forward_layer.cell, layer.backward_layer.cell] if D == 2 else [layer.cell]
        for d, cell in enumerate(cells):
            w_ih, w_hh, b_ih, b_hh = to_framework(*layer_arrays(model, k, d), "keras")
            cell.kernel.assign(w_ih.astype(dtype))
            cell.recurrent_kernel.assign(w_hh.astype(dtype))
            if model.bias:
                bias = np.stack([b_ih, b_hh]) if model.reset_after else b_ih + b_hh
                cell.bias.assign(bias.astype(dtype))
    return kmodel
