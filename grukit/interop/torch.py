"""torch.nn.GRU / GRUCell ↔ grukit: the same parameter names and layout, so conversion copies tensors."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..nn import GRU, GRUCell
from ._layouts import check_plain


def from_torch(module: nn.Module, backend: str = "auto") -> GRU | GRUCell:
    """A grukit GRU or GRUCell with the configuration and weights of a ``torch.nn.GRU`` / ``torch.nn.GRUCell``."""
    p = next(module.parameters())
    kw: dict[str, Any] = {"device": p.device, "dtype": p.dtype, "backend": backend}
    out: GRU | GRUCell
    if isinstance(module, nn.GRU):
        if getattr(module, "proj_size", 0):
            raise ValueError("torch.nn.GRU has no proj_size; got a module with proj_size set")
        out = GRU(
            module.input_size,
            module.hidden_size,
            module.num_layers,
            module.bias,
            module.batch_first,
            float(module.dropout),
            module.bidirectional,
            reset_after=True,
            **kw,
        )
    elif isinstance(module, nn.GRUCell):
        out = GRUCell(module.input_size, module.hidden_size, module.bias, reset_after=True, **kw)
    else:
        raise TypeError(
            f"from_torch expected a torch.nn.GRU or torch.nn.GRUCell, got {type(module).__name__}"
        )
    with torch.no_grad():
        out.load_state_dict(module.state_dict())
    return out.train(module.training)


def to_torch(model: nn.Module) -> nn.Module:
    """A ``torch.nn.GRU`` / ``torch.nn.GRUCell`` with the same weights (reset_after=True models only)."""
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
