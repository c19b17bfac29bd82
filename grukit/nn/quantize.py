"""``grukit.quantize``: bfloat16 or int8 weight matrices for inference (float32 state, biases and accumulation)."""

from __future__ import annotations

import torch
from torch import nn

from . import _fast
from .cell import GRUCell
from .gru import GRU

__all__ = ["quantize"]

_NAMES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "int8": torch.int8,
    "fp32": torch.float32,
    "float32": torch.float32,
}
_FORMAT = {torch.bfloat16: "bf16", torch.int8: "int8", torch.float32: None}


def _weight_names(m: GRU | GRUCell) -> list[str]:
    if isinstance(m, GRUCell):
        return ["weight_ih", "weight_hh"]
    return [n for names in m._param_names for n in names[:2]]


def quantize(model: nn.Module, dtype: str = "bf16") -> nn.Module:
    """Store the weight matrices of every :class:`grukit.GRU` / :class:`grukit.GRUCell` in ``model`` in
    bfloat16 or int8, for inference.

    In place; returns ``model``. ``W_ih`` and ``W_hh`` of each layer change; biases, the state and every
    accumulation stay float32, and the inputs stay float32. Other modules (embeddings, heads) are left alone.

    - ``"bf16"``: the weights become bfloat16 parameters (rounded to nearest even: a relative error of at
      most 2^-9 per weight).
    - ``"int8"``: per-row symmetric int8: each row r of W_ih and W_hh becomes ``q[r] · s[r]`` with
      ``s[r] = max_k |W[r, k]| / 127`` (float32, a buffer ``<weight name>_scale``, e.g. ``weight_hh_l0_scale``)
      and ``q = round(W / s)`` in [-127, 127] (an int8 parameter): an error of at most ``s[r] / 2`` per
      weight. The streaming step also rounds its inputs: each vector it multiplies (x, h, and r ⊙ h for
      ``reset_after=False``) is rounded per step and batch row to an 8-bit magnitude, ``max|v| / 255``
      apart, times its sign (AVX-512-VNNI ``vpdpbusd`` u8 × s8 dot products, exact int32 sums; a generic
      path elsewhere gives the same bits).

    Streaming steps (``GRUCell.forward``, ``GRU.step``, :class:`grukit.nn.Streamer`) on CPU read the
    quantized weights directly (bf16 halves, int8 quarters the bytes each step reads). Every other call
    (``GRU.forward`` over a sequence, graphs, other devices) runs the float32 path on float32 copies made for
    that call (bf16 exactly; int8 as ``q · s``, with float32 inputs: no input rounding); the module holds
    them during the call, so do not call one quantized module from several threads at once. The weights are
    for inference: a call that would need gradients raises RuntimeError. ``quantize(model, "float32")``
    turns them back into trainable float32 parameters (the rounding stays) and removes the scales.

    ``.double()``, ``.half()``, ``.to(dtype)`` on an int8 model leave the int8 weights and their float32
    scales as they are and convert the biases: the model then computes in that dtype on ``q · s`` (rounded
    to it), as the dequantized float32 model converted the same way would; ``.float()`` brings back the
    float32 model and its int8 streaming step. Undoing then gives weights of that dtype.

    ``state_dict()`` holds the quantized weights (and, for int8, the scales); loading it into a float32 model
    gives that model the rounded weights (int8: dequantized), and loading a float32 state dict into a
    quantized model rounds it (int8: fresh per-row scales), as a load into a bfloat16 module does.

    ``torch.ao.quantization.quantize_dynamic`` is no substitute: it is deprecated in torch 2.13 and returns
    grukit's layers unchanged (float32), without an error.

    Args:
        model: a module containing grukit GRU layers or cells (or one itself), with float32 weights.
        dtype: ``"bf16"`` (or ``"bfloat16"``), ``"int8"``, or ``"float32"`` (``"fp32"``) to undo.

    Returns:
        ``model``, changed in place.

    Raises:
        ValueError: an unknown ``dtype``, no grukit GRU layer in ``model``, a weight that is not a plain
            float32 (or, undoing, bfloat16/int8) parameter, e.g. float64, parametrized or already in the other
            quantized format, or (int8) a weight that is not finite.

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
        >>> cell = grukit.quantize(grukit.GRUCell(8, 16), "int8")
        >>> cell.weight_hh.dtype, tuple(cell.weight_hh_scale.shape)
        (torch.int8, (48,))
        >>> with torch.no_grad():
        ...     h = cell(torch.randn(1, 8))
        >>> tuple(h.shape)
        (1, 16)
    """
    if not isinstance(dtype, str) or dtype not in _NAMES:
        raise ValueError(f"dtype must be one of {sorted(_NAMES)}, got {dtype!r}")
    target = _NAMES[dtype]
    sources = (torch.float32,) if target != torch.float32 else (torch.bfloat16, torch.int8)
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
            if p.dtype not in sources:
                want = " or ".join(str(d) for d in sources)
                raise ValueError(
                    f"{type(m).__name__}.{n}: expected {want} weights to convert to {target}, got {p.dtype}"
                )
            if target == torch.int8 and not bool(torch.isfinite(p.detach()).all()):
                raise ValueError(
                    f"{type(m).__name__}.{n}: int8 needs finite weights, got inf or NaN"
                )
            if p.dtype == torch.int8 and m._buffers.get(n + _fast.SCALE) is None:
                raise ValueError(
                    f"{type(m).__name__}.{n} is int8 without its scale {n}{_fast.SCALE}"
                )
            todo.append((m, n, p))
    for m, n, p in todo:  # all checked first: a refusal leaves the model unchanged
        scale_name = n + _fast.SCALE
        if target == torch.int8:
            q, scale = _fast.quantize_rows(p)
            setattr(m, n, nn.Parameter(q, requires_grad=False))
            m.register_buffer(scale_name, scale)
            continue
        if p.dtype == torch.int8:
            s_old = m._buffers[scale_name]
            assert s_old is not None  # checked above
            # in the dtype the module computes in (the biases': float64 after .double())
            w = _fast.dequantize(p.detach(), s_old).to(_fast.compute_dtype(m))
            del m._buffers[scale_name]
        else:
            w = p.detach().to(target)
        setattr(m, n, nn.Parameter(w, requires_grad=target == torch.float32))
    for m in layers:
        m._step_plan = None
        m._qweights = _FORMAT[target]
    return model
