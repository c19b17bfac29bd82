"""GRU variants that change the per-step math: layer normalization, recurrent dropout, zoneout, DropConnect.

They are options of :class:`grukit.GRU` (``layer_norm=True, recurrent_dropout=p, zoneout=p,
dropconnect=p``); this file holds their equations and the composite loop that runs them. In the module
docstring's notation (torch layout, gates stacked r, z, n; LN_g normalizes each gate group of H features
separately, without its own gain or shift)::

    layer norm (Ba et al. 2016; per gate group, as haste's LayerNormGRU):
        gi = γ_ih ⊙ LN_g(W_ih x) + b_ih          γ_ih, γ_hh (3H) learnable gains (start at 1);
        gh = γ_hh ⊙ LN_g(W_hh h) + b_hh          b_ih, b_hh (the usual biases) are the LN shifts
        reset_after=False: the n row of gh is γ_hn ⊙ LN(W_hn (r ⊙ h)) + b_hn
    recurrent dropout (Gal & Ghahramani 2016): the state feeding the recurrent products is h ⊙ m, with
        one mask m ∈ {0, 1/(1−p)} (B, H) per sequence, layer and direction, the same at every step; the
        state update z ⊙ h + (1 − z) ⊙ n uses the undropped h
    DropConnect (Wan et al. 2013; AWD-LSTM's weight drop): W_hh ⊙ M, M ∈ {0, 1/(1−p)} (3H, H), one mask
        per forward call, layer and direction
    zoneout (Krueger et al. 2017): h_t = d_t ⊙ h_{t−1} + (1 − d_t) ⊙ h'_t, with d_t ∈ {0, 1} (B, H) drawn
        afresh at every step, P(d = 1) = p (the unit keeps its old value); in eval d_t is replaced by its
        expectation p

All regularizers act in training mode only, except zoneout, whose eval form (the expectation) differs
from the plain GRU. Layer norm and zoneout change every step, so they run this file's composite loop;
recurrent dropout does in training. DropConnect alone only changes W_hh and still goes through
`grukit.kernels.dispatch` (the fused kernel where eligible). The float64 spec is
`grukit.reference.variants`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .cell import GateValues

LN_EPS = 1e-5
_LOW_PRECISION = (torch.bfloat16, torch.float16)


class VariantMasks(NamedTuple):
    """The random masks of one layer and direction for one forward call (None where inactive).

    recurrent (B, H) in {0, 1/(1−p)}; zoneout (T, B, H) in {0, 1}, 1 = keep the old value, time-major
    indexed by the time step itself (also for the reverse direction); dropconnect (3H, H) in {0, 1/(1−p)}.
    """

    recurrent: Tensor | None = None
    zoneout: Tensor | None = None
    dropconnect: Tensor | None = None


def dropout_mask(shape, p: float, like: Tensor) -> Tensor:
    """An inverted-dropout mask of ``shape``: 0 with probability p, else 1/(1−p)."""
    keep = torch.full(shape, 1.0 - p, dtype=like.dtype, device=like.device)
    return torch.bernoulli(keep) / (1.0 - p)


def zoneout_mask(shape, p: float, like: Tensor) -> Tensor:
    """A zoneout mask of ``shape``: 1 (keep the previous value) with probability p, else 0."""
    return torch.bernoulli(torch.full(shape, p, dtype=like.dtype, device=like.device))


def group_layer_norm(a: Tensor, gain: Tensor, hidden_size: int, eps: float = LN_EPS) -> Tensor:
    """γ ⊙ LN_g(a): layer norm over each group of ``hidden_size`` features of a (..., k·H), gain (k·H,)."""
    groups = a.unflatten(-1, (-1, hidden_size))  # (..., k, H)
    normed = F.layer_norm(groups, (hidden_size,), eps=eps)
    return normed.flatten(-2) * gain


def input_projection(
    x: Tensor, w_ih: Tensor, b_ih: Tensor | None, ln_ih: Tensor | None, eps: float = LN_EPS
) -> Tensor:
    """gi for every step at once: x (T, B, I) → (T, B, 3H); layer-normed per gate group when ln_ih is given."""
    if ln_ih is None:
        return F.linear(x, w_ih, b_ih)
    gi = group_layer_norm(F.linear(x, w_ih), ln_ih, w_ih.shape[0] // 3, eps)
    return gi if b_ih is None else gi + b_ih


def variant_step(
    gi: Tensor,
    h: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    reset_after: bool,
    ln_hh: Tensor | None = None,
    recurrent_mask: Tensor | None = None,
    eps: float = LN_EPS,
) -> tuple[Tensor, GateValues]:
    """One step before zoneout: gi (B, 3H), h (B, H) → (h' (B, H), GateValues(z, r, n)).

    ``w_hh`` is already DropConnect-masked if that is on; ``recurrent_mask`` (B, H) drops the state feeding
    the recurrent products only.
    """
    H = h.shape[-1]
    hd = (
        h if recurrent_mask is None else h * recurrent_mask
    )  # (B, H) state as the recurrent products see it
    gi_r, gi_z, gi_n = gi.split(H, dim=-1)
    if reset_after:
        gh = F.linear(hd, w_hh)  # (B, 3H)
        if ln_hh is not None:
            gh = group_layer_norm(gh, ln_hh, H, eps)
        if b_hh is not None:
            gh = gh + b_hh
        gh_r, gh_z, gh_n = gh.split(H, dim=-1)
        r = torch.sigmoid(gi_r + gh_r)
        z = torch.sigmoid(gi_z + gh_z)
        n = torch.tanh(gi_n + r * gh_n)
    else:
        gh_rz = F.linear(hd, w_hh[: 2 * H])  # (B, 2H)
        if ln_hh is not None:
            gh_rz = group_layer_norm(gh_rz, ln_hh[: 2 * H], H, eps)
        if b_hh is not None:
            gh_rz = gh_rz + b_hh[: 2 * H]
        gh_r, gh_z = gh_rz.split(H, dim=-1)
        r = torch.sigmoid(gi_r + gh_r)
        z = torch.sigmoid(gi_z + gh_z)
        gh_n = F.linear(r * hd, w_hh[2 * H :])  # (B, H)
        if ln_hh is not None:
            gh_n = group_layer_norm(gh_n, ln_hh[2 * H :], H, eps)
        if b_hh is not None:
            gh_n = gh_n + b_hh[2 * H :]
        n = torch.tanh(gi_n + gh_n)
    h_new = n + z * (h - n)  # = z ⊙ h + (1 − z) ⊙ n, with the undropped h
    return h_new, GateValues(z, r, n)


def _zone(h_new: Tensor, h: Tensor, keep) -> Tensor:
    """Zoneout: keep ⊙ h + (1 − keep) ⊙ h'; keep a {0, 1} mask (training: kept units are exactly h) or the
    probability p (eval: the expectation)."""
    if isinstance(keep, Tensor):
        return torch.where(keep != 0, h, h_new)
    return h_new + keep * (h - h_new)


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
    ln_ih: Tensor | None = None,
    ln_hh: Tensor | None = None,
    recurrent_mask: Tensor | None = None,
    zoneout: Tensor | float | None = None,
    eps: float = LN_EPS,
):
    """One direction of a variant GRU over x (T, B, I) from h0 (B, H) → (output (T, B, H), h_n (B, H), gates).

    Same contract as ``grukit.kernels.composite.sequence`` (lengths, reverse, gates zero past the end), plus:
    ``ln_ih``/``ln_hh`` (3H) layer-norm gains or None; ``recurrent_mask`` (B, H) or None; ``zoneout`` a keep
    mask (T, B, H) of {0, 1} (training), a float p (eval: the expectation) or None. DropConnect is applied
    by the caller to ``w_hh``. Steps past a sequence's length leave the state unchanged.
    """
    dtype = x.dtype
    if dtype in _LOW_PRECISION:  # compute in fp32, return in the input's dtype
        up = lambda t: None if t is None or not isinstance(t, Tensor) else t.float()  # noqa: E731
        x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh, recurrent_mask = map(
            up, (x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh, recurrent_mask)
        )
        zoneout = up(zoneout) if isinstance(zoneout, Tensor) else zoneout
    T = x.shape[0]
    gi_all = input_projection(x, w_ih, b_ih, ln_ih, eps)  # (T, B, 3H)
    valid = None
    if lengths is not None:
        valid = (torch.arange(T)[:, None] < lengths[None, :]).to(x.device)[..., None]  # (T, B, 1)
    outs: list[Tensor] = [x.new_empty(0)] * T
    gates: list[list[Tensor]] = [[], [], []]
    gi_steps = gi_all.unbind(
        0
    )  # unbind, not gi_all[t]: its backward is one stack instead of T full-size adds
    h = h0
    for t in range(T - 1, -1, -1) if reverse else range(T):
        h_new, g = variant_step(gi_steps[t], h, w_hh, b_hh, reset_after, ln_hh, recurrent_mask, eps)
        if zoneout is not None:
            h_new = _zone(h_new, h, zoneout[t] if isinstance(zoneout, Tensor) else zoneout)
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
        gate_tensors = tuple(
            torch.stack(lst).to(dtype) if T else x.new_zeros(0, x.shape[1], h0.shape[-1]).to(dtype)
            for lst in gates
        )
    return out.to(dtype), h.to(dtype), gate_tensors


def cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    reset_after: bool = True,
    ln_ih: Tensor | None = None,
    ln_hh: Tensor | None = None,
    recurrent_mask: Tensor | None = None,
    zoneout: Tensor | float | None = None,
    eps: float = LN_EPS,
) -> Tensor:
    """One variant step: x (B, I), h (B, H) → h' (B, H); ``zoneout`` a keep mask (B, H), a float p, or None."""
    out, h_new, _ = sequence(
        x.unsqueeze(0),
        h,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        reset_after,
        ln_ih=ln_ih,
        ln_hh=ln_hh,
        recurrent_mask=recurrent_mask,
        zoneout=zoneout.unsqueeze(0) if isinstance(zoneout, Tensor) else zoneout,
        eps=eps,
    )
    return h_new
