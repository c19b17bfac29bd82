"""``grukit.quantize``: bfloat16 weight matrices for inference (float32 state, biases and accumulation)."""

from __future__ import annotations

import torch
from torch import nn

from .cell import GRUCell
from .gru import GRU

__all__ = ["quantize"]

_NAMES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
}


def _weight_names(m: GRU | GRUCell) -> list[str]:
    if isinstance(m, GRUCell):
        return ["weight_ih", "weight_hh"]
    return [n for names in m._param_names for n in names[:2]]


def quantize(model: nn.Module, dtype: str = "bf16") -> nn.Module:
    """Store the weight matrices of every :class:`grukit.GRU` / :class:`grukit.GRUCell` in ``model`` in bfloat16.

    In place; returns ``model``. ``W_ih`` and ``W_hh`` of each layer become bfloat16 parameters with
    ``requires_grad=False`` (rounded to nearest even: a relative error of at most 2^-9 per weight); biases, the
    state and every accumulation stay float32, and the inputs stay float32. Other modules (embeddings,
    heads) are left alone. Streaming steps (``GRUCell.forward``, ``GRU.step``, :class:`grukit.nn.Streamer`)
    at small batch read the bfloat16 weights directly (AVX-512-BF16 dot products where the CPU has them, a
    conversion path elsewhere), which halves the bytes each step reads; every other call (``GRU.forward``,
    graphs, other devices) runs the float32 path on weights upcast for that call (exactly; the module holds
    them during the call, so do not call one quantized module from several threads at once). The weights are
    for inference: a call that would need gradients raises RuntimeError. ``quantize(model, "float32")`` turns
    them back into trainable float32 parameters (the rounding stays).

    Args:
        model: a module containing grukit GRU layers or cells (or one itself), with float32 weights.
        dtype: ``"bf16"`` (or ``"bfloat16"``), or ``"float32"`` (``"fp32"``) to undo.

    Returns:
        ``model``, changed in place.

    Raises:
        ValueError: an unknown ``dtype``, no grukit GRU layer in ``model``, or a weight that is not a plain
            float32 (or, undoing, bfloat16) parameter, e.g. float64 or parametrized.

    Example:
        >>> import torch, grukit
        >>> gru = grukit.GRU(8, 16, num_layers=2).eval()
        >>> x = torch.randn(5, 1, 8)
        >>> ref, _ = gru(x)
        >>> _ = grukit.quantize(gru, "bf16")
        >>> gru.weight_hh_l0.dtype, gru.bias_hh_l0.dtype
        (torch.bfloat16, torch.float32)
        >>> with torch.inference_mode():
        ...     out, _ = gru(x)
        ...     y, h = gru.step(x[0])
        >>> bool((out - ref).abs().max() < 1e-2), out.dtype
        (True, torch.float32)
    """
    if not isinstance(dtype, str) or dtype not in _NAMES:
        raise ValueError(f"dtype must be one of {sorted(_NAMES)}, got {dtype!r}")
    target = _NAMES[dtype]
    source = torch.float32 if target == torch.bfloat16 else torch.bfloat16
    layers = [m for m in model.modules() if isinstance(m, (GRU, GRUCell))]
    if not layers:
        raise ValueError(
            f"quantize expected a model with grukit.GRU or grukit.GRUCell layers, got {type(model).__name__}"
        )
    todo = []
    for m in layers:
        for n in _weight_names(m):
            p = m._parameters.get(n)
            if p is None:
                raise ValueError(f"{type(m).__name__}.{n} is not a plain parameter (parametrized?)")
            if p.dtype == target:
                continue
            if p.dtype != source:
                raise ValueError(
                    f"{type(m).__name__}.{n}: expected {source} weights to convert to {target}, got {p.dtype}"
                )
            todo.append((m, n, p))
    for m, n, p in todo:  # all checked first: a refusal leaves the model unchanged
        q = nn.Parameter(p.detach().to(target), requires_grad=target == torch.float32)
        setattr(m, n, q)
    for m in layers:
        m._step_plan = None
        m._bf16_weights = target == torch.bfloat16
    return model
