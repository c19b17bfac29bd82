"""The one layer driver behind ``GRU``, its variants and ``MinGRU``.

It owns everything around the per-direction recurrence: PackedSequence in and out, unbatched input,
batch_first, the input/h0 checks, layers × directions, dropout between layers, gate stacking and the
streaming step's layer loop, and the autocast rule (the recurrence runs in the parameters' float32 with
autocast off inside; outputs stay float32 on CPU, as torch.nn.GRU's, and take the autocast dtype on CUDA).
The layers pass a ``direction`` function that runs one layer and direction over time-major input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .. import _checks
from ..errors import ShapeError

_any_autocast = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)

DirectionFn = Callable[
    [int, int, Tensor, Tensor, "Tensor | None", bool], "tuple[Tensor, Tensor, Any]"
]


class Stack(Protocol):
    """What the driver reads from a layer."""

    input_size: int
    hidden_size: int
    num_layers: int
    num_directions: int
    batch_first: bool
    dropout: float
    training: bool


class Prepared(NamedTuple):
    """A forward call's input, brought to time-major form, and what is needed to restore its shape."""

    x: Tensor  # (T, B, I)
    h0: Tensor  # (L·D, B, H)
    lengths: Tensor | None  # (B,) int64 CPU
    packed: PackedSequence | None  # the input PackedSequence (its orders), or None
    unbatched: bool
    batch_first: bool
    autocast: str | None  # the device type whose autocast is on, else None


def autocast_device(x: Tensor) -> str | None:
    """The device type of ``x`` if autocast is on for it, else None (cheap when no autocast is on)."""
    if not _any_autocast():
        return None
    dev = x.device.type
    return dev if torch.is_autocast_enabled(dev) else None


_NULL = contextlib.nullcontext()


def no_autocast(device: str | None) -> contextlib.AbstractContextManager[None]:
    """Turn autocast off for ``device`` inside (a shared null context when device is None: no cost)."""
    if device is None:
        return _NULL
    return torch.autocast(device, enabled=False)


def _autocast_in(owner: str, name: str, value: Tensor, param: Tensor) -> Tensor:
    """Under autocast, a floating input of another dtype is cast to the parameters' dtype."""
    if value.dtype != param.dtype and value.is_floating_point() and param.is_floating_point():
        return value.to(param.dtype)
    return value


def prepare(m: Stack, owner: str, input: Any, hx: Any, lengths: Any, param: Tensor) -> Prepared:
    """Check a forward call's arguments and bring them to time-major form (see :class:`Prepared`)."""
    packed = input if isinstance(input, PackedSequence) else None
    if packed is not None:
        if lengths is not None:
            raise ValueError(
                f"{owner} got both a PackedSequence and lengths; a PackedSequence carries its own lengths"
            )
        x, lengths = pad_packed_sequence(packed, batch_first=False)  # (T, B, I), original order
        unbatched = batch_first = False
    else:
        x = _checks.tensor("input", input)
        if x.dim() not in (2, 3):
            raise ShapeError(
                f"{owner} expected input of 3 dimensions ({'B, T' if m.batch_first else 'T, B'}, I) "
                f"or 2 dimensions (T, I) unbatched, got {x.dim()} dimensions"
            )
        unbatched = x.dim() == 2
        batch_first = m.batch_first and not unbatched
    if x.shape[-1] != m.input_size:
        raise ShapeError(
            f"{owner} expected input of size {m.input_size} in its last dimension, got {x.shape[-1]}"
        )
    ac = autocast_device(x)
    if ac is not None:
        x = _autocast_in(owner, "input", x, param)
    _checks.same_dtype(owner, "input", x, param)
    if packed is None:
        if unbatched:
            x = x.unsqueeze(1)
        elif batch_first:
            x = x.transpose(0, 1)
    T, B = x.shape[0], x.shape[1]
    if T == 0:
        raise ShapeError(
            f"{owner} expected a sequence length larger than 0, got input of shape "
            f"{tuple(input.shape)}"
        )
    if lengths is not None:
        lengths = _checks.lengths(lengths, B, T)
    h0 = check_hx(m, owner, hx, B, unbatched, x, param, ac)
    return Prepared(x, h0, lengths, packed, unbatched, batch_first, ac)


def check_hx(
    m: Stack,
    owner: str,
    hx: Any,
    B: int,
    unbatched: bool,
    like: Tensor,
    param: Tensor,
    ac: str | None = None,
) -> Tensor:
    """hx (L·D, B, H) (or (L·D, H) unbatched) checked, None → zeros; returns (L·D, B, H)."""
    LD, H = m.num_layers * m.num_directions, m.hidden_size
    if hx is None:
        return like.new_zeros(LD, B, H)
    hx = _checks.tensor("hx", hx)
    want = (LD, H) if unbatched else (LD, B, H)
    if tuple(hx.shape) != want:
        raise ShapeError(
            f"{owner} expected hx of shape {want} (num_layers·D, {'' if unbatched else 'B, '}H), "
            f"got {tuple(hx.shape)}"
        )
    if ac is not None:
        hx = _autocast_in(owner, "hx", hx, param)
    _checks.same_dtype(owner, "hx", hx, param)
    out: Tensor = hx.unsqueeze(1) if unbatched else hx
    return out


def run_layers(
    m: Stack,
    p: Prepared,
    direction: DirectionFn,
    return_gates: bool,
) -> tuple[Tensor, Tensor, list[list[Any]]]:
    """Layers × directions over ``p.x`` → (out (T, B, D·H), h_n (L·D, B, H), per-layer per-direction gates).

    ``direction(layer, d, layer_in, h0, lengths, return_gates) -> (out (T, B, H), h_n (B, H), gates)``.
    """
    D = m.num_directions
    layer_in, h0, lengths = p.x, p.h0, p.lengths
    h_n: list[Tensor] = []
    gate_layers: list[list[Any]] = []
    last = m.num_layers - 1
    for layer in range(m.num_layers):
        if D == 1:
            out, h, g = direction(layer, 0, layer_in, h0[layer], lengths, return_gates)
            h_n.append(h)
            layer_gates = [g]
        else:
            outs, layer_gates = [], []
            for d in range(D):
                out, h, g = direction(layer, d, layer_in, h0[layer * D + d], lengths, return_gates)
                outs.append(out)
                h_n.append(h)
                layer_gates.append(g)
            out = torch.cat(outs, dim=-1)
        if m.dropout and m.training and layer < last:
            out = F.dropout(out, m.dropout, training=True)
        layer_in = out
        gate_layers.append(layer_gates)
    return layer_in, torch.stack(h_n), gate_layers


def stack_gates(gate_layers: list[list[Any]], n: int) -> list[Tensor]:
    """Per-layer, per-direction gate tuples → n tensors of shape (L, D, T, B, H)."""
    return [torch.stack([torch.stack([g[k] for g in lg]) for lg in gate_layers]) for k in range(n)]


def finish(p: Prepared, out: Tensor, h_n: Tensor) -> tuple[Any, Tensor]:
    """Time-major (out, h_n) back to the input's form: PackedSequence, unbatched or batch_first."""
    if p.autocast == "cuda":  # torch's CUDA RNNs return the autocast dtype
        dt = torch.get_autocast_dtype("cuda")
        out, h_n = out.to(dt), h_n.to(dt)
    if p.packed is not None:
        # Re-pack in the input's own sorted order so sorted/unsorted indices match the input's.
        assert p.lengths is not None
        order = p.packed.sorted_indices
        out_sorted = out if order is None else out.index_select(1, order)
        lens_sorted = p.lengths if order is None else p.lengths.index_select(0, order.cpu())
        data = pack_padded_sequence(out_sorted, lens_sorted, enforce_sorted=True)
        output = PackedSequence(
            data.data, data.batch_sizes, p.packed.sorted_indices, p.packed.unsorted_indices
        )
        return output, h_n
    if p.unbatched:
        return out.squeeze(1), h_n.squeeze(1)
    return (out.transpose(0, 1) if p.batch_first else out), h_n


def prepare_step(
    m: Stack, owner: str, x_t: Any, h: Any, param: Tensor
) -> tuple[Tensor, Tensor, bool, str | None]:
    """Check a streaming step's (x_t, h) → (x (B, I), h0 (L, B, H), unbatched, autocast device)."""
    if m.num_directions != 1:
        raise ValueError(
            f"{owner}.step needs a unidirectional {owner}: the reverse direction of a bidirectional "
            f"{owner} depends on future inputs; run the whole sequence with the layer instead"
        )
    x_t = _checks.tensor("x_t", x_t)
    if x_t.dim() not in (1, 2):
        raise ShapeError(
            f"{owner}.step expected x_t of shape (B, {m.input_size}) or ({m.input_size},), "
            f"got {x_t.dim()} dimensions"
        )
    if x_t.shape[-1] != m.input_size:
        raise ShapeError(
            f"{owner} expected x_t of size {m.input_size} in its last dimension, got {x_t.shape[-1]}"
        )
    ac = autocast_device(x_t)
    if ac is not None:
        x_t = _autocast_in(owner, "x_t", x_t, param)
    _checks.same_dtype(owner, "x_t", x_t, param)
    unbatched = x_t.dim() == 1
    x = x_t.unsqueeze(0) if unbatched else x_t
    h0 = check_hx(m, owner, h, x.shape[0], unbatched, x, param, ac)
    return x, h0, unbatched, ac


def step_layers(
    m: Stack, x: Tensor, h0: Tensor, step: Callable[[int, Tensor, Tensor], Tensor]
) -> tuple[Tensor, Tensor]:
    """The streaming layer loop: ``step(layer, x, h) -> h'`` per layer, dropout between layers in training."""
    new_h = []
    last = m.num_layers - 1
    for layer in range(m.num_layers):
        x = step(layer, x, h0[layer])
        new_h.append(x)
        if m.dropout and m.training and layer < last:
            x = F.dropout(x, m.dropout, training=True)
    return new_h[-1], torch.stack(new_h)


def finish_step(y: Tensor, h_new: Tensor, unbatched: bool, ac: str | None) -> tuple[Tensor, Tensor]:
    if ac == "cuda":
        dt = torch.get_autocast_dtype("cuda")
        y, h_new = y.to(dt), h_new.to(dt)
    if unbatched:
        return y.squeeze(0), h_new.squeeze(1)
    return y, h_new
