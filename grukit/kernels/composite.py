"""The composite path: the GRU recurrence as plain torch ops (differentiable to any order, any device).

The input projection for all steps is one matrix product; the loop then applies `nn.cell.gru_step`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..nn.cell import gru_step

_LOW_PRECISION = (torch.bfloat16, torch.float16)


def _upcast(*ts):
    return [None if t is None else t.float() for t in ts]


def sequence(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    reset_after: bool = True,
    lengths: Tensor | None = None,
    reverse: bool = False,
    return_gates: bool = False,
):
    """One direction over x (T, B, I) from h0 (B, H) → (output (T, B, H), h_n (B, H), gates or None).

    With ``lengths`` (B,), steps at t ≥ length leave the state unchanged and output zeros, so the forward
    direction's h_n is the state at each sequence's last step and the reverse direction starts at each
    sequence's own end. Gates (z, r, n) are each (T, B, H), zero past a sequence's end.
    """
    dtype = x.dtype
    if dtype in _LOW_PRECISION:  # compute in fp32, return in the input's dtype
        x, h0, w_ih, w_hh, b_ih, b_hh = _upcast(x, h0, w_ih, w_hh, b_ih, b_hh)
    T = x.shape[0]
    # (T, B, 3H): the input projection for every step at once, split into per-step views with unbind
    # (indexing gi_all[t] instead would make the backward pass O(T²): each index's gradient is full-size).
    gi_all = F.linear(x, w_ih, b_ih).unbind(0)
    valid = None
    if lengths is not None:
        valid = (
            (torch.arange(T)[:, None] < lengths[None, :]).to(x.device)[..., None].unbind(0)
        )  # T × (B, 1)
    outs: list[Tensor] = [x.new_empty(0)] * T
    gates: list[list[Tensor]] = [[], [], []] if return_gates else []
    h = h0
    order = range(T - 1, -1, -1) if reverse else range(T)
    for t in order:
        h_new, g = gru_step(gi_all[t], h, w_hh, b_hh, reset_after)
        if valid is not None:
            m = valid[t]
            h_new = torch.where(m, h_new, h)
            outs[t] = h_new * m
            if return_gates:
                g = [v * m for v in g]
        else:
            outs[t] = h_new
        if return_gates:
            for lst, v in zip(gates, g):
                lst.append(v)
        h = h_new
    out = torch.stack(outs) if T else x.new_zeros(0, x.shape[1], h0.shape[-1])
    gate_tensors = None
    if return_gates:
        if reverse:
            gates = [lst[::-1] for lst in gates]
        gate_tensors = tuple(torch.stack(lst).to(dtype) for lst in gates)
    return out.to(dtype), h.to(dtype), gate_tensors


def cell(
    x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih, b_hh, reset_after: bool = True
) -> Tensor:
    """One step: x (B, I), h (B, H) → h' (B, H)."""
    dtype = x.dtype
    if dtype in _LOW_PRECISION:
        x, h, w_ih, w_hh, b_ih, b_hh = _upcast(x, h, w_ih, w_hh, b_ih, b_hh)
    return gru_step(F.linear(x, w_ih, b_ih), h, w_hh, b_hh, reset_after)[0].to(dtype)
