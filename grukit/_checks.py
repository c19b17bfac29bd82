"""Argument and shape checks shared by the public layers, with "expected X, got Y" messages."""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import Tensor

from .errors import ShapeError

BACKENDS = ("auto", "fused", "torch")


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(value).__name__}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def backend(value: Any) -> str:
    if value not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {value!r}")
    return str(value)


def tensor(name: str, value: Any) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def same_dtype(owner: str, name: str, value: Tensor, param: Tensor) -> None:
    if value.dtype != param.dtype:
        raise TypeError(
            f"{owner} expected {name} of dtype {param.dtype} (the dtype of its parameters), got {value.dtype}; "
            f"convert one of them, e.g. with .to({param.dtype})"
        )
    if not value.is_floating_point():
        raise TypeError(f"{owner} expected a floating-point {name}, got {value.dtype}")


def cell_inputs(
    owner: str, x: Any, h: Any, input_size: int, hidden_size: int, param: Tensor
) -> tuple[Tensor, Tensor, bool]:
    """Validate a cell's (x, h); return batched x (B, I), h (B, H) and whether the input was unbatched."""
    x = tensor("input", x)
    if x.dim() not in (1, 2):
        raise ShapeError(
            f"{owner} expected input of 1 dimension (I,) or 2 dimensions (B, I), got {x.dim()} dimensions"
        )
    if x.shape[-1] != input_size:
        raise ShapeError(
            f"{owner} expected input of size {input_size} in its last dimension, got {x.shape[-1]}"
        )
    same_dtype(owner, "input", x, param)
    unbatched = x.dim() == 1
    if unbatched:
        x = x.unsqueeze(0)
    B = x.shape[0]
    if h is None:
        h = x.new_zeros(B, hidden_size)
    else:
        h = tensor("hx", h)
        want = (hidden_size,) if unbatched else (B, hidden_size)
        if tuple(h.shape) != want:
            raise ShapeError(f"{owner} expected hx of shape {want}, got {tuple(h.shape)}")
        same_dtype(owner, "hx", h, param)
        if unbatched:
            h = h.unsqueeze(0)
    return x, h, unbatched


def lengths(value: Any, batch: int, steps: int) -> Tensor:
    """Validate per-sequence lengths: 1-D integer, one per sequence, each in 1..T. Returns int64 on CPU."""
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
            raise TypeError(
                f"lengths must hold integers, got {[type(v).__name__ for v in value][:4]}"
            )
        value = torch.tensor(value, dtype=torch.int64)
    value = tensor("lengths", value)
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor, got dtype {value.dtype}")
    if value.dim() != 1:
        raise ValueError(
            f"lengths must be 1-D (one length per sequence), got {value.dim()} dimensions"
        )
    if value.numel() != batch:
        raise ValueError(
            f"lengths must have one entry per sequence: expected {batch}, got {value.numel()}"
        )
    out: Tensor = value.to("cpu", torch.int64)
    if batch and torch.compiler.is_exporting():
        # torch.export: the values are not known while tracing; the checks become runtime asserts of
        # the exported program (a bad length raises there instead of giving a wrong answer)
        lo_s, hi_s = out.min().item(), out.max().item()
        torch._check(lo_s >= 1, lambda: "lengths must be at least 1")
        torch._check(
            hi_s <= steps, lambda: f"lengths must be at most the sequence length T={steps}"
        )
        return out
    if batch:
        lo, hi = int(out.min()), int(out.max())
        if lo < 1:
            raise ValueError(f"lengths must be at least 1, got {lo}")
        if hi > steps:
            raise ValueError(f"lengths must be at most the sequence length T={steps}, got {hi}")
    return out
