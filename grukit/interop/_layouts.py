"""The one table of how each framework lays out a GRU's weights; every converter goes through it.

grukit (= torch) stacks the three gate blocks r, z, n along the rows of (3H, ·) matrices and keeps two
bias vectors (3H,) each. The others differ in three ways:

============  ==========  ===========================  ==========================================================
framework     gate order  weight shapes                biases
============  ==========  ===========================  ==========================================================
torch         r, z, n     W_ih (3H, I), W_hh (3H, H)   b_ih (3H,), b_hh (3H,)
keras         z, r, n     kernel (I, 3H),              reset_after=True:  bias (2, 3H) = [input row, recurrent row]
                          recurrent_kernel (H, 3H)     reset_after=False: bias (3H,) input only (no recurrent bias)
onnx          z, r, n     W (D, 3H, I), R (D, 3H, H)   B (D, 6H) = [Wb, Rb]; linear_before_reset=1 ⇔ reset_after
============  ==========  ===========================  ==========================================================

All three use h' = z ⊙ h + (1 − z) ⊙ n with the same z, and place the recurrent bias of the candidate the
same way: inside r ⊙ (W_hn h + b_hn) when the reset gate comes after the product, outside
(W_hn (r ⊙ h) + b_hn) when it comes before. So with reset_after=False every bias is a plain sum and Keras'
single bias row is exactly b_ih + b_hh (checked against Keras' and onnxruntime's own forward in the tests).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

Arr = npt.NDArray[Any]

GATES_GRUKIT = ("r", "z", "n")


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one framework stores a GRU layer (one direction)."""

    name: str
    gates: tuple[str, str, str]  # order of the three H-sized blocks along the gate axis
    transposed: bool  # True: matrices are (in, 3H) instead of grukit's (3H, in)
    bias: str  # a short description of the bias layout, for messages


LAYOUTS = {
    "torch": Layout("torch", ("r", "z", "n"), False, "b_ih (3H,), b_hh (3H,)"),
    "keras": Layout(
        "keras",
        ("z", "r", "n"),
        True,
        "reset_after=True: (2, 3H) [input, recurrent]; reset_after=False: (3H,) input only",
    ),
    "onnx": Layout("onnx", ("z", "r", "n"), False, "B (D, 6H) = [Wb, Rb]"),
}


def _perm(src: tuple[str, ...], dst: tuple[str, ...]) -> list[int]:
    return [src.index(g) for g in dst]


def reorder_gates(a: Arr, src: str, dst: str, axis: int = 0) -> Arr:
    """Permute the three H-sized gate blocks of ``a`` along ``axis`` from framework ``src``'s order to ``dst``'s."""
    n = a.shape[axis]
    if n % 3:
        raise ValueError(
            f"expected a gate axis of size 3H, got size {n} on axis {axis} of shape {a.shape}"
        )
    blocks = np.split(a, 3, axis=axis)
    return np.concatenate(
        [blocks[i] for i in _perm(LAYOUTS[src].gates, LAYOUTS[dst].gates)], axis=axis
    )


def to_framework(
    w_ih: Arr, w_hh: Arr, b_ih: Arr | None, b_hh: Arr | None, dst: str
) -> tuple[Arr, Arr, Arr | None, Arr | None]:
    """grukit's (W_ih (3H, I), W_hh (3H, H), b_ih, b_hh) in ``dst``'s gate order and orientation."""
    lay = LAYOUTS[dst]
    w_ih, w_hh = reorder_gates(w_ih, "torch", dst), reorder_gates(w_hh, "torch", dst)
    if lay.transposed:
        w_ih, w_hh = w_ih.T, w_hh.T
    b_ih = None if b_ih is None else reorder_gates(b_ih, "torch", dst)
    b_hh = None if b_hh is None else reorder_gates(b_hh, "torch", dst)
    return np.ascontiguousarray(w_ih), np.ascontiguousarray(w_hh), b_ih, b_hh


def from_framework(
    w_ih: Arr, w_hh: Arr, b_ih: Arr | None, b_hh: Arr | None, src: str
) -> tuple[Arr, Arr, Arr | None, Arr | None]:
    """The inverse of :func:`to_framework`: ``src``'s matrices and biases in grukit's layout."""
    lay = LAYOUTS[src]
    if lay.transposed:
        w_ih, w_hh = w_ih.T, w_hh.T
    w_ih, w_hh = reorder_gates(w_ih, src, "torch"), reorder_gates(w_hh, src, "torch")
    b_ih = None if b_ih is None else reorder_gates(b_ih, src, "torch")
    b_hh = None if b_hh is None else reorder_gates(b_hh, src, "torch")
    return np.ascontiguousarray(w_ih), np.ascontiguousarray(w_hh), b_ih, b_hh


def _names(layer: int, direction: int) -> tuple[str, str, str, str]:
    sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
    return (f"weight_ih{sfx}", f"weight_hh{sfx}", f"bias_ih{sfx}", f"bias_hh{sfx}")


def _params(model: Any, layer: int, direction: int) -> list[Any]:
    """The four parameters of one layer/direction by their state_dict names (None where there is no bias);
    int8 weights (``grukit.quantize(model, "int8")``) come back dequantized, ``q · scale`` per row."""
    out = []
    for n in _names(layer, direction):
        t = getattr(model, n, None)
        scale = getattr(model, n + "_scale", None)
        if t is not None and t.dtype == torch.int8 and scale is not None:
            t = t.detach().float() * scale.detach().float()[:, None]
        out.append(t)
    return out


def _numpy(t: Any) -> Arr:
    t = t.detach().cpu()
    if (
        t.is_floating_point() and t.element_size() == 2
    ):  # bf16/fp16: NumPy has no bf16; fp32 holds both
        t = t.float()
    out: Arr = t.numpy().copy()
    return out


def layer_arrays(model: Any, layer: int, direction: int) -> tuple[Arr, Arr, Arr | None, Arr | None]:
    """One layer/direction of a grukit.GRU as float NumPy arrays (W_ih, W_hh, b_ih, b_hh) in grukit's layout.

    Weights stored in bfloat16 or float16 (``grukit.quantize``) come out as float32 holding the rounded
    values, which is what such a model computes with (its state and accumulation are float32); int8 weights
    come out dequantized (``q · scale``: what its float32 paths compute with; its streaming step also rounds
    the inputs)."""
    w_ih, w_hh, b_ih, b_hh = (
        None if t is None else _numpy(t) for t in _params(model, layer, direction)
    )
    assert w_ih is not None and w_hh is not None
    return w_ih, w_hh, b_ih, b_hh


def set_layer(
    model: Any,
    layer: int,
    direction: int,
    w_ih: Arr,
    w_hh: Arr,
    b_ih: Arr | None,
    b_hh: Arr | None,
) -> None:
    """Copy grukit-layout arrays into one layer/direction of ``model``, checking every shape."""
    import torch

    params = _params(model, layer, direction)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    with torch.no_grad():
        for name, p, a in zip(names, params, (w_ih, w_hh, b_ih, b_hh)):
            if p is None:
                if a is not None and np.any(a != 0):
                    raise ValueError(
                        f"layer {layer} direction {direction}: the model has no bias but the source "
                        f"has a non-zero {name}"
                    )
                continue
            if a is None:
                a = np.zeros(tuple(p.shape), dtype=np.float64)
            a = np.asarray(a)
            if tuple(a.shape) != tuple(p.shape):
                raise ValueError(
                    f"layer {layer} direction {direction}: {name} has shape {tuple(a.shape)}, "
                    f"expected {tuple(p.shape)}"
                )
            p.copy_(torch.as_tensor(a, dtype=p.dtype))


def check_plain(model: Any, target: str) -> None:
    """Refuse a grukit.GRU whose evaluation-mode math is not the plain GRU (``target`` has no such option).

    Layer norm and zoneout change the inference equations; recurrent dropout and dropconnect act in training
    only, so the exported inference function is still exact.
    """
    extra: list[str] = []
    if getattr(model, "layer_norm", False):
        extra.append("layer_norm=True")
    if getattr(model, "zoneout", 0.0):
        extra.append(f"zoneout={model.zoneout}")
    if extra:
        raise ValueError(
            f"{target} has only the plain GRU; this model uses {', '.join(extra)}, which changes its "
            f"inference math, so it cannot be converted exactly"
        )
