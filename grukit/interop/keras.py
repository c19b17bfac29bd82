"""Keras 3 ``keras.layers.GRU`` ↔ grukit.GRU (weights only; any Keras backend, data moves as NumPy arrays).

Keras stacks gates z, r, n and stores matrices transposed (see ``_layouts``). A Keras GRU with
``reset_after=True`` has a (2, 3H) bias [input row, recurrent row] and maps to grukit ``reset_after=True``;
``reset_after=False`` has one (3H,) input bias (no recurrent bias) and maps to grukit ``reset_after=False``
with ``bias_hh = 0``. Exporting a grukit ``reset_after=False`` model folds ``bias_hh`` into that single row,
which is exact because with the reset gate before the product every bias is a plain sum.

Keras is batch-first, so imported models get ``batch_first=True``: ``keras_model(x)`` equals ``gru(x)[0]``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserInputError
from ..nn import GRU
from ._layouts import check_plain, from_framework, layer_arrays, set_layer, to_framework
from .chain import DirectionSpec, GRUChain, GRUChainConfig, LayerSpec


def _keras() -> Any:
    """Import Keras, selecting the torch backend when Keras has not been imported yet."""
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras  # type: ignore[import-untyped]
    except ImportError as e:
        raise ImportError(
            f"Keras interop needs the keras package (pip install 'grukit[interop]') and a working backend; "
            f"importing keras with KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r} failed: {e}"
        ) from e
    return keras


def _np(v: Any) -> np.ndarray:
    keras = _keras()
    return np.asarray(keras.ops.convert_to_numpy(v))


def _is_gru(layer: Any) -> bool:
    keras = _keras()
    return isinstance(layer, keras.layers.GRU)


def _check_gru_layer(layer: Any, where: str) -> None:
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


@dataclasses.dataclass
class _KerasLayer:
    """One GRU or Bidirectional(GRU) layer of the chain, as Keras computes it."""

    name: str
    fw: Any  # keras.layers.GRU
    bw: Any | None  # the Bidirectional's backward_layer, or None
    merge: str | None  # Bidirectional merge_mode ("concat" for a single GRU)
    return_sequences: bool


def _functional_chain(model: Any) -> list[Any]:
    """The layers of a functional Keras model in data-flow order, if it is one chain; else a clear error.

    Walks back from the output through each layer's single input tensor to the model's single input. A layer
    with two inputs (``Add``, ``Concatenate``, an ``initial_state`` tensor), two outputs taken from different
    layers, or a layer reading another layer's *state* output breaks the chain and is named.
    """
    keras = _keras()
    if len(model.inputs) != 1:
        raise ValueError(
            f"the functional Keras model {model.name!r} has {len(model.inputs)} inputs; from_keras imports "
            f"one chain of GRU / Bidirectional(GRU) layers reading one input"
        )
    tops = {id(t._keras_history.operation): t._keras_history for t in model.outputs}
    if len(tops) != 1:
        names = sorted(h.operation.name for h in tops.values())
        raise ValueError(
            f"the functional Keras model {model.name!r} has outputs from {len(tops)} layers {names}; "
            f"from_keras imports one chain of GRU / Bidirectional(GRU) layers (parallel branches have no "
            f"grukit equivalent)"
        )
    hist = next(iter(tops.values()))
    chain: list[Any] = []
    while True:
        op = hist.operation
        if isinstance(op, keras.layers.InputLayer):
            break
        node = op._inbound_nodes[hist.node_index]
        ins = list(node.input_tensors)
        if len(ins) != 1:
            raise ValueError(
                f"layer {op.name!r} ({type(op).__name__}) of the functional Keras model {model.name!r} "
                f"reads {len(ins)} tensors: the graph is not one chain of GRU / Bidirectional(GRU) "
                f"layers (parallel branches, merges and initial_state inputs have no grukit equivalent)"
            )
        src = ins[0]._keras_history
        if not isinstance(src.operation, keras.layers.InputLayer) and src.tensor_index != 0:
            raise ValueError(
                f"layer {op.name!r} reads output {src.tensor_index} (a state) of layer "
                f"{src.operation.name!r}, not its sequence: not a GRU stack"
            )
        chain.append(op)
        hist = src
    if hist.operation is not model.inputs[0]._keras_history.operation:
        raise ValueError(
            f"the chain of the functional Keras model {model.name!r} does not start at its input"
        )
    return chain[::-1]


def _layers_of(obj: Any) -> list[Any]:
    keras = _keras()
    if isinstance(obj, (list, tuple)):
        return list(obj)
    if isinstance(obj, keras.Sequential):
        return [l for l in obj.layers if not isinstance(l, keras.layers.InputLayer)]
    if isinstance(obj, keras.Model):
        try:
            model_inputs, model_outputs = obj.inputs, obj.outputs
        except (AttributeError, ValueError):
            model_inputs = model_outputs = None
        if not model_inputs or not model_outputs:
            raise TypeError(
                f"from_keras cannot follow the call of the subclassed Keras model {type(obj).__name__} "
                f"(no functional graph); pass its GRU layers as a list, in order"
            )
        return _functional_chain(obj)
    return [obj]


def _stack_from(obj: Any) -> list[_KerasLayer]:
    """The GRU layers of ``obj`` in stacking order, each checked for a form grukit computes exactly."""
    keras = _keras()
    items = _layers_of(obj)
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
            if fw.cell.units != bw.cell.units:
                raise ValueError(
                    f"{where}: the two directions have {fw.cell.units} and {bw.cell.units} units; "
                    f"grukit's directions share one hidden size"
                )
            stack.append(
                _KerasLayer(layer.name, fw, bw, layer.merge_mode, bool(layer.return_sequences))
            )
        elif _is_gru(layer):
            _check_gru_layer(layer, where)
            stack.append(
                _KerasLayer(layer.name, layer, None, "concat", bool(layer.return_sequences))
            )
        else:
            raise TypeError(
                f"from_keras expected GRU or Bidirectional(GRU) layers only, got {type(layer).__name__} "
                f"at {where}; pass the GRU layers themselves (e.g. a list of model.layers[i])"
            )
    for i, kl in enumerate(stack[:-1]):
        if not kl.return_sequences:
            raise ValueError(
                f"layer {i} ({kl.name}): a stacked GRU below the top must have return_sequences=True"
            )
        if kl.merge is None:
            raise ValueError(
                f"layer {i} ({kl.name}): merge_mode=None returns two tensors, which the next layer "
                f"cannot read; only the top layer may have it"
            )
    units = stack[0].fw.cell.units
    for i, kl in enumerate(stack):
        if kl.fw.cell.units != units:
            raise ValueError(
                f"layer {i} ({kl.name}): every GRU in the stack needs the same units; layer 0 has "
                f"{units}, layer {i} has {kl.fw.cell.units}"
            )
    return stack


def _is_plain(stack: list[_KerasLayer]) -> bool:
    """True when one grukit.GRU computes the stack: same options everywhere, concat merges, no go_backwards."""

    cells = [c for kl in stack for c in [kl.fw.cell] + ([] if kl.bw is None else [kl.bw.cell])]
    same = len({(bool(c.reset_after), bool(c.use_bias)) for c in cells}) == 1
    same_d = len({kl.bw is None for kl in stack}) == 1
    return (
        same
        and same_d
        and all(
            kl.merge == "concat" and (kl.bw is not None or not kl.fw.go_backwards) for kl in stack
        )
    )


def _describe(stack: list[_KerasLayer]) -> str:
    parts = []
    for kl in stack:
        if kl.bw is not None:
            parts.append(f"Bidirectional(merge_mode={kl.merge!r})")
        else:
            parts.append("GRU(go_backwards=True)" if kl.fw.go_backwards else "GRU")
    return "Keras " + " → ".join(parts)


def _cell_arrays(
    layer: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """One Keras GRU layer's weights in grukit's layout (W_ih, W_hh, b_ih, b_hh)."""
    cell = layer.cell
    kernel, rec = _np(cell.kernel), _np(cell.recurrent_kernel)
    b_ih = b_hh = None
    if cell.use_bias:
        bias = _np(cell.bias)
        if cell.reset_after:
            b_ih, b_hh = bias[0], bias[1]
        else:
            b_ih, b_hh = bias, np.zeros_like(bias)
    return from_framework(kernel, rec, b_ih, b_hh, "keras")


def from_keras(obj: Any, backend: str = "auto", batch_first: bool = True) -> GRU | GRUChain:
    """A grukit model computing what a Keras GRU stack computes.

    ``obj``: a ``keras.layers.GRU``, a ``keras.layers.Bidirectional(GRU)``, a Keras model (Sequential, or a
    functional model that is one chain input → layer → … → layer), a list of such layers (stacked in order),
    or the path of a ``.keras`` file (loaded with Keras' ``safe_mode``). Every layer needs the same ``units``
    and activation tanh / recurrent_activation sigmoid. Functional graphs that are not one chain (parallel
    branches, ``Add``/``Concatenate``, ``initial_state`` inputs, a layer reading another's state) are refused
    with the breaking layer named.

    Returns a ``grukit.GRU`` when the layers share ``reset_after`` / ``use_bias`` / direction count, every
    Bidirectional concatenates and no layer reads backwards on its own: with ``batch_first=True`` (Keras'
    layout) ``gru(x)[0]`` for x (B, T, I) equals the Keras output with ``return_sequences=True`` (with
    ``return_sequences=False`` at the top, Keras returns the top layer's final states,
    ``h_n[-D:]`` concatenated). Anything else — ``go_backwards=True``, ``merge_mode`` ``"sum"``, ``"mul"``,
    ``"ave"`` or ``None``, mixed options — returns a :class:`~grukit.interop.chain.GRUChain` whose output
    *is* the Keras output (return_sequences, merge and time order included).

    Example:
        >>> import keras, numpy as np, torch, grukit
        >>> layer = keras.layers.GRU(4, return_sequences=True, go_backwards=True)
        >>> x = np.random.rand(2, 5, 3).astype("float32")
        >>> _ = layer(x)
        >>> chain = grukit.from_keras(layer)
        >>> out, h_n = chain(torch.from_numpy(x))
        >>> bool(np.abs(out.detach().numpy() - keras.ops.convert_to_numpy(layer(x))).max() < 1e-5)
        True
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
    first = stack[0].fw
    units = int(first.cell.units)
    input_size = int(_np(first.cell.kernel).shape[0])
    np_dtype = _np(first.cell.kernel).dtype
    dtype = getattr(torch, str(np_dtype))
    if _is_plain(stack):
        D = 1 if stack[0].bw is None else 2
        model = GRU(
            input_size,
            units,
            len(stack),
            bias=bool(first.cell.use_bias),
            batch_first=batch_first,
            bidirectional=D == 2,
            reset_after=bool(first.cell.reset_after),
            dtype=dtype,
            backend=backend,
        )
        for k, kl in enumerate(stack):
            for d, layer in enumerate([kl.fw] if kl.bw is None else [kl.fw, kl.bw]):
                set_layer(model, k, d, *_cell_arrays(layer))
        return model.eval()
    specs = []
    for kl in stack:
        dirs = [
            DirectionSpec(
                flip_input=bool(kl.fw.go_backwards),
                flip_output=False,
                reset_after=bool(kl.fw.cell.reset_after),
                bias=bool(kl.fw.cell.use_bias),
            )
        ]
        if (
            kl.bw is not None
        ):  # Keras flips the backward layer's outputs back when it returns sequences
            dirs.append(
                DirectionSpec(
                    flip_input=True,
                    flip_output=kl.return_sequences,
                    reset_after=bool(kl.bw.cell.reset_after),
                    bias=bool(kl.bw.cell.use_bias),
                )
            )
        specs.append(LayerSpec(int(_np(kl.fw.cell.kernel).shape[0]), dirs, kl.merge))
    chain = GRUChain(
        GRUChainConfig(
            units,
            specs,
            batch_first=batch_first,
            return_sequences=stack[-1].return_sequences,
            dtype=str(np_dtype),
            source=_describe(stack),
        )
    )
    for k, kl in enumerate(stack):
        for d, layer in enumerate([kl.fw] if kl.bw is None else [kl.fw, kl.bw]):
            set_layer(chain.direction(k, d), 0, 0, *_cell_arrays(layer))
    return chain.eval()


def to_keras(model: nn.Module, return_sequences: bool = True) -> Any:
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
                assert b_ih is not None and b_hh is not None
                bias = np.stack([b_ih, b_hh]) if model.reset_after else b_ih + b_hh
                cell.bias.assign(bias.astype(dtype))
    return kmodel
