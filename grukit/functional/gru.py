"""The GRU equations (one step, both reset placements, the variants) and the one composite time loop.

For input x (B, I) and previous state h (B, H), with torch's parameter layout (rows stacked r, z, n)::

    z  = σ(W_iz x + b_iz + W_hz h + b_hz)        update gate: the share of the OLD state kept
    r  = σ(W_ir x + b_ir + W_hr h + b_hr)        reset gate
    n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))     reset_after=True  (torch, cuDNN, Keras default)
    n  = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)     reset_after=False (Cho et al. 2014)
    h' = z ⊙ h + (1 − z) ⊙ n

Many texts (and the minGRU paper) write h' = (1 − z) ⊙ h + z ⊙ n: the same model with z renamed 1 − z.

Variants (options of ``grukit.GRU``; LN_g normalizes each gate group of H features separately)::

    layer norm (Ba et al. 2016; per gate group, as haste's LayerNormGRU):
        gi = γ_ih ⊙ LN_g(W_ih x) + b_ih          γ_ih, γ_hh (3H) learnable gains (start at 1);
        gh = γ_hh ⊙ LN_g(W_hh h) + b_hh          b_ih, b_hh (the usual biases) are the LN shifts
        reset_after=False: the n row of gh is γ_hn ⊙ LN(W_hn (r ⊙ h)) + b_hn
    recurrent dropout (Gal & Ghahramani 2016): the state feeding the recurrent products is h ⊙ m, with
        one mask m ∈ {0, 1/(1−p)} (B, H) per sequence, layer and direction; the update uses the undropped h
    DropConnect (Wan et al. 2013): W_hh ⊙ M, M ∈ {0, 1/(1−p)} (3H, H), one mask per forward call
    zoneout (Krueger et al. 2017): h_t = d_t ⊙ h_{t−1} + (1 − d_t) ⊙ h'_t, d_t ∈ {0, 1} (B, H) drawn at
        every step, P(d = 1) = p; in eval d_t is replaced by its expectation p

:func:`sequence` is the one composite time loop (plain GRU and every variant); :func:`cell` one step.
The float64 NumPy specs are ``grukit.reference``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

LN_EPS = 1e-5
_LOW_PRECISION = (torch.bfloat16, torch.float16)


class GateValues(NamedTuple):
    """The gate activations of one step, each (B, H)."""

    z: Tensor
    r: Tensor
    n: Tensor


class VariantMasks(NamedTuple):
    """The random masks of one layer and direction for one forward call (None where inactive).

    recurrent (B, H) in {0, 1/(1−p)}; zoneout (T, B, H) in {0, 1}, 1 = keep the old value, time-major
    indexed by the time step itself (also for the reverse direction); dropconnect (3H, H) in {0, 1/(1−p)}.
    """

    recurrent: Tensor | None = None
    zoneout: Tensor | None = None
    dropconnect: Tensor | None = None


# ------------------------------------------------------------------------------------------ plain step
def gru_step(
    gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, reset_after: bool
) -> tuple[Tensor, GateValues]:
    """One GRU step from the input projection ``gi = x W_ihᵀ + b_ih`` (B, 3H) and state ``h`` (B, H).

    Returns ``(h', GateValues(z, r, n))``. Splitting off the input projection lets a layer compute it for
    all time steps with one matrix product.

    Example:
        >>> import torch
        >>> h, g = gru_step(torch.zeros(2, 12), torch.zeros(2, 4), torch.zeros(12, 4), None, True)
        >>> tuple(h.shape)
        (2, 4)
    """
    H = h.shape[-1]
    gi_r, gi_z, gi_n = torch.split(gi, H, dim=-1)  # each (B, H)
    if reset_after:
        gh = F.linear(h, w_hh, b_hh)  # (B, 3H)
        gh_r, gh_z, gh_n = torch.split(gh, H, dim=-1)
        r = torch.sigmoid(gi_r + gh_r)
        z = torch.sigmoid(gi_z + gh_z)
        n = torch.tanh(gi_n + r * gh_n)
    else:
        b_rz, b_n = (None, None) if b_hh is None else (b_hh[: 2 * H], b_hh[2 * H :])
        gh_rz = F.linear(h, w_hh[: 2 * H], b_rz)  # (B, 2H)
        gh_r, gh_z = torch.split(gh_rz, H, dim=-1)
        r = torch.sigmoid(gi_r + gh_r)
        z = torch.sigmoid(gi_z + gh_z)
        n = torch.tanh(gi_n + F.linear(r * h, w_hh[2 * H :], b_n))
    h_new = n + z * (h - n)  # = z ⊙ h + (1 − z) ⊙ n
    return h_new, GateValues(z, r, n)


def gru_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    reset_after: bool = True,
) -> Tensor:
    """One GRU step: x (B, I), h (B, H) → h' (B, H)."""
    return gru_step(F.linear(x, w_ih, b_ih), h, w_hh, b_hh, reset_after)[0]


# ----------------------------------------------------------------------------------------- variant math
def dropout_mask(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """An inverted-dropout mask of ``shape``: 0 with probability p, else 1/(1−p)."""
    keep = torch.full(shape, 1.0 - p, dtype=like.dtype, device=like.device)
    return torch.bernoulli(keep) / (1.0 - p)


def zoneout_mask(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """A zoneout mask of ``shape``: 1 (keep the previous value) with probability p, else 0."""
    return torch.bernoulli(torch.full(shape, p, dtype=like.dtype, device=like.device))


def group_layer_norm(a: Tensor, gain: Tensor, hidden_size: int, eps: float = LN_EPS) -> Tensor:
    """γ ⊙ LN_g(a): layer norm over each group of ``hidden_size`` features of a (..., k·H), gain (k·H,)."""
    groups = a.reshape(*a.shape[:-1], a.shape[-1] // hidden_size, hidden_size)  # (..., k, H)
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
    hd = h if recurrent_mask is None else h * recurrent_mask  # the state the recurrent products see
    gi_r, gi_z, gi_n = torch.split(gi, H, dim=-1)
    if reset_after:
        gh = F.linear(hd, w_hh)  # (B, 3H)
        if ln_hh is not None:
            gh = group_layer_norm(gh, ln_hh, H, eps)
        if b_hh is not None:
            gh = gh + b_hh
        gh_r, gh_z, gh_n = torch.split(gh, H, dim=-1)
        r = torch.sigmoid(gi_r + gh_r)
        z = torch.sigmoid(gi_z + gh_z)
        n = torch.tanh(gi_n + r * gh_n)
    else:
        gh_rz = F.linear(hd, w_hh[: 2 * H])  # (B, 2H)
        if ln_hh is not None:
            gh_rz = group_layer_norm(gh_rz, ln_hh[: 2 * H], H, eps)
        if b_hh is not None:
            gh_rz = gh_rz + b_hh[: 2 * H]
        gh_r, gh_z = torch.split(gh_rz, H, dim=-1)
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


def _zone(h_new: Tensor, h: Tensor, keep: Tensor | float) -> Tensor:
    """Zoneout: keep ⊙ h + (1 − keep) ⊙ h'; keep a {0, 1} mask (training) or the probability p (eval)."""
    if isinstance(keep, Tensor):
        return torch.where(keep != 0, h, h_new)
    return h_new + keep * (h - h_new)


def _up(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.float()


# ------------------------------------------------------------------------------- the one composite loop
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
) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor] | None]:
    """One direction over x (T, B, I) from h0 (B, H) → (output (T, B, H), h_n (B, H), gates or None).

    With ``lengths`` (B,), steps at t ≥ length leave the state unchanged and output zeros, so the forward
    direction's h_n is the state at each sequence's last step and the reverse direction starts at each
    sequence's own end. Gates (z, r, n) are each (T, B, H), zero past a sequence's end. Variants:
    ``ln_ih``/``ln_hh`` (3H) layer-norm gains; ``recurrent_mask`` (B, H); ``zoneout`` a keep mask
    (T, B, H) of {0, 1} (training), a float p (eval) or None; DropConnect is applied by the caller to
    ``w_hh``. bfloat16/float16 inputs are computed in float32 and returned in their own dtype.

    Example:
        >>> import torch
        >>> x, h0 = torch.randn(5, 2, 3), torch.zeros(2, 4)
        >>> w_ih, w_hh = torch.randn(12, 3), torch.randn(12, 4)
        >>> out, h_n, _ = sequence(x, h0, w_ih, w_hh, None, None)
        >>> tuple(out.shape), bool((out[-1] == h_n).all())
        ((5, 2, 4), True)
    """
    dtype = x.dtype
    if dtype in _LOW_PRECISION:  # compute in fp32, return in the input's dtype
        x, h0, w_ih, w_hh = x.float(), h0.float(), w_ih.float(), w_hh.float()
        b_ih, b_hh, ln_ih, ln_hh = _up(b_ih), _up(b_hh), _up(ln_ih), _up(ln_hh)
        recurrent_mask = _up(recurrent_mask)
        zoneout = zoneout.float() if isinstance(zoneout, Tensor) else zoneout
    plain = ln_hh is None and recurrent_mask is None
    T = x.shape[0]
    # (T, B, 3H): the input projection for every step at once, split into per-step views with unbind
    # (indexing gi_all[t] instead would make the backward pass O(T²): each index's gradient is full-size).
    gi_all = input_projection(x, w_ih, b_ih, ln_ih, eps).unbind(0)
    valid = None
    if lengths is not None:
        valid = (torch.arange(T)[:, None] < lengths[None, :]).to(x.device)[..., None].unbind(0)
    outs: list[Tensor] = [x.new_empty(0)] * T
    gates: list[list[Tensor]] = [[], [], []]
    h = h0
    for t in range(T - 1, -1, -1) if reverse else range(T):
        if plain:
            h_new, g = gru_step(gi_all[t], h, w_hh, b_hh, reset_after)
        else:
            h_new, g = variant_step(
                gi_all[t], h, w_hh, b_hh, reset_after, ln_hh, recurrent_mask, eps
            )
        if zoneout is not None:
            h_new = _zone(h_new, h, zoneout[t] if isinstance(zoneout, Tensor) else zoneout)
        if valid is not None:
            m = valid[t]
            h_new = torch.where(m, h_new, h)
            outs[t] = h_new * m
            if return_gates:
                g = GateValues(*(v * m for v in g))
        else:
            outs[t] = h_new
        if return_gates:
            for lst, v in zip(gates, g):
                lst.append(v)
        h = h_new
    empty = x.new_zeros(0, x.shape[1], h0.shape[-1])
    out = torch.stack(outs) if T else empty
    gate_tensors = None
    if return_gates:
        if reverse:
            gates = [lst[::-1] for lst in gates]
        z, r, n = (torch.stack(lst).to(dtype) if T else empty.to(dtype) for lst in gates)
        gate_tensors = (z, r, n)
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
    """One step: x (B, I), h (B, H) → h' (B, H); ``zoneout`` a keep mask (B, H), a float p, or None."""
    if ln_ih is None and ln_hh is None and recurrent_mask is None and zoneout is None:
        dtype = x.dtype
        if dtype in _LOW_PRECISION:
            x, h, w_ih, w_hh, b_ih, b_hh = (
                x.float(),
                h.float(),
                w_ih.float(),
                w_hh.float(),
                _up(b_ih),
                _up(b_hh),
            )
        return gru_step(F.linear(x, w_ih, b_ih), h, w_hh, b_hh, reset_after)[0].to(dtype)
    return sequence(
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
    )[1]
