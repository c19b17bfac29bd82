"""torch.nn.GRU / GRUCell ↔ grukit: the same parameter names and layout, so conversion copies tensors."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..nn import GRU, GRUCell
from ._layouts import check_plain


def from_torch(module: nn.Module, backend: str = "auto") -> GRU | GRUCell:
    """A grukit GRU or GRUCell with the configuration and weights of a ``torch.nn.GRU`` / ``torch.nn.GRUCell``.

    The parameters are copied (same names and layout), onto the module's device and dtype, and the result
    is in the module's train/eval mode; it computes what the module computes, with the same shapes
    ((T, B, H) outputs, or (B, T, H) with ``batch_first``).

    Args:
        module: a ``torch.nn.GRU`` (without ``proj_size``) or a ``torch.nn.GRUCell``.
        backend: the ``backend`` of the new layer (``"auto"``, ``"fused"`` or ``"torch"``).

    Returns:
        A :class:`grukit.GRU` for a ``torch.nn.GRU``, a :class:`grukit.GRUCell` for a ``torch.nn.GRUCell``,
        both with ``reset_after=True`` (torch's reset placement).

    Raises:
        TypeError: ``module`` is neither a ``torch.nn.GRU`` nor a ``torch.nn.GRUCell``.
        ValueError: a ``torch.nn.GRU`` with ``proj_size`` set.

    Example:
        >>> import torch, grukit
        >>> ref = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True)
        >>> gru = grukit.from_torch(ref)
        >>> x = torch.randn(2, 5, 3)  # (B, T, I)
        >>> out, h_n = gru(x)
        >>> tuple(out.shape), tuple(h_n.shape)
        ((2, 5, 8), (4, 2, 4))
        >>> torch.allclose(out, ref(x)[0], atol=1e-6)
        True
    """
    if isinstance(module, nn.GRU):
        return GRU.from_torch(module, backend=backend)  # the layer owns the nn.GRU mapping
    if not isinstance(module, nn.GRUCell):
        raise TypeError(
            f"from_torch expected a torch.nn.GRU or torch.nn.GRUCell, got {type(module).__name__}"
        )
    p = next(module.parameters())
    out = GRUCell(
        module.input_size,
        module.hidden_size,
        module.bias,
        reset_after=True,
        device=p.device,
        dtype=p.dtype,
        backend=backend,
    )
    with torch.no_grad():
        out.load_state_dict(module.state_dict())
    return out.train(module.training)


def to_torch(model: nn.Module) -> nn.Module:
    """A ``torch.nn.GRU`` / ``torch.nn.GRUCell`` with the same configuration and weights.

    The inverse of :func:`from_torch`: parameters are copied onto the model's device and dtype, and the
    result is in the model's train/eval mode. Training-only variants (``recurrent_dropout``,
    ``dropconnect``) are dropped, since torch has no such options; the inference function is the same.

    Args:
        model: a :class:`grukit.GRU` or :class:`grukit.GRUCell` with ``reset_after=True``.

    Returns:
        A ``torch.nn.GRU`` for a GRU (outputs (T, B, D·H), or (B, T, D·H) with ``batch_first``), a
        ``torch.nn.GRUCell`` for a GRUCell.

    Raises:
        TypeError: ``model`` is not a grukit GRU or GRUCell.
        ValueError: ``reset_after=False``, or a variant torch cannot express (``layer_norm``,
            ``zoneout``).

    Example:
        >>> import torch, grukit
        >>> gru = grukit.GRU(3, 4, batch_first=True)
        >>> ref = grukit.to_torch(gru)
        >>> type(ref).__name__
        'GRU'
        >>> x = torch.randn(2, 5, 3)
        >>> torch.allclose(ref(x)[0], gru(x)[0], atol=1e-6)
        True
    """
    if not isinstance(model, (GRU, GRUCell)):
        raise TypeError(
            f"to_torch expected a grukit.GRU or grukit.GRUCell, got {type(model).__name__}"
        )
    if isinstance(model, GRU):
        check_plain(model, "torch.nn.GRU")
    if not model.reset_after:
        raise ValueError(
            "to_torch needs reset_after=True: torch.nn.GRU only implements the reset gate applied "
            "after the recurrent matrix product; this model has reset_after=False"
        )
    extra = [
        k for k in model.state_dict() if not (k.startswith("weight_") or k.startswith("bias_"))
    ]
    if extra:
        raise ValueError(
            f"to_torch cannot express this model's extra parameters in torch.nn.GRU: {extra[:4]}"
        )
    p = next(model.parameters())
    kw: dict[str, Any] = {"device": p.device, "dtype": p.dtype}
    out: nn.Module
    if isinstance(model, GRU):
        out = nn.GRU(
            model.input_size,
            model.hidden_size,
            model.num_layers,
            model.bias,
            model.batch_first,
            model.dropout,
            model.bidirectional,
            **kw,
        )
    else:
        out = nn.GRUCell(model.input_size, model.hidden_size, model.bias, **kw)
    with torch.no_grad():
        out.load_state_dict(model.state_dict())
    return out.train(model.training)


def swap_to_torch(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every grukit.GRU / GRUCell inside replaced by an equal torch.nn one.

    For ``torch.onnx.export`` of a model that contains a grukit.GRU: torch's exporters turn torch.nn.GRU into
    the ONNX GRU operator, so the file keeps a dynamic time axis (tracing grukit's own loop fixes T). The
    parent must call the GRU the torch way (``gru(x)`` or ``gru(x, h0)``, no ``lengths``/``return_gates``);
    every GRU needs ``reset_after=True`` (:func:`to_torch` says why otherwise).
    """
    import copy

    if isinstance(model, (GRU, GRUCell)):
        return to_torch(model)
    out = copy.deepcopy(model)
    for name, child in list(out.named_modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, (GRU, GRUCell)):
                try:
                    setattr(child, attr, to_torch(sub))
                except ValueError as e:
                    raise ValueError(f"{(name + '.' if name else '') + attr}: {e}") from None
    return out
