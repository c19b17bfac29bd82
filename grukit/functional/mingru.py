"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): gates that depend on x_t only, so that training can
run a parallel scan over time instead of a step-by-step loop.

In grukit's convention (z = share of the OLD state kept), for input x_t (B, I) with parameters
``weight_ih_l{k}`` (2H, I) and ``bias_ih_l{k}`` (2H), rows stacked z, n::

    z_t = σ(W_iz x_t + b_iz)                  (B, H)  share of the old state kept
    n_t = g(W_in x_t + b_in)                  (B, H)  candidate, g(a) = a + ½ if a ≥ 0 else σ(a)  (> 0)
    h_t = z_t ⊙ h_{t−1} + (1 − z_t) ⊙ n_t

The paper writes h_t = (1 − z'_t) ⊙ h_{t−1} + z'_t ⊙ h̃_t with z'_t = σ(k_t): its z' is our 1 − z, i.e.
its pre-activation k_t = −(W_iz x_t + b_iz); its h̃_t = g(·) is our n_t (the paper's log-space version, whose
g keeps the candidate positive so that its logarithm exists).

The recurrence is linear in h, h_t = a_t ⊙ h_{t−1} + b_t with a_t = z_t and b_t = (1 − z_t) ⊙ n_t, so with
L_t = Σ_{s≤t} log a_s (the products of the a's, kept in log space)::

    h_t = e^{L_t} ⊙ h_0 + Σ_{s≤t} e^{L_t − L_s} ⊙ b_s

Two parallel scans evaluate it for all t at once (both with an O(T) hand-written backward: the adjoint
λ_t = ∂ℓ/∂h_t + a_{t+1} λ_{t+1} is the same scan run backwards in time):

- ``mode="scan"`` (default), :func:`scan`: the classic blocked parallel scan in linear space. The sequence is
  cut into ~√T blocks; every block's local recurrence (from state 0) and its running product of a's are
  computed for all blocks at once, one block position at a time; a pass over the block ends carries the
  state; a last parallel step adds P_t ⊙ h_start. It rounds like the sequential loop in the input's own
  dtype (no logarithms, any sign of h_0), and needs about 2√T vectorized steps instead of T.
- ``mode="logscan"``, :func:`log_scan`: the paper's log-space form, e^{L_t − L_s} formed from prefix sums of
  log a. A single logcumsumexp over the sequence would let L_t grow like t·|log z| and cancel when added
  (fp32 loses ~1e-3 relative by T = 4096), its backward needs signed values, which logs cannot hold, and
  torch's CPU logcumsumexp backward alone measured slower than the sequential loop; so it runs in chunks of
  16 steps (prefix sums inside every chunk in parallel, then a pass over the T/16 chunk boundaries), in
  float64 whatever the input dtype, with log a clamped at −40 (z < 4e−18 changes h below float64 resolution).
- ``mode="loop"``: the recurrence step by step (after one input GEMM for all steps); differentiable to any
  order, the oracle the scans are tested against.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

MODES = ("scan", "logscan", "loop")


def g(a: Tensor) -> Tensor:
    """The paper's positive candidate activation: a + ½ for a ≥ 0, σ(a) below (continuous at 0)."""
    return torch.where(a >= 0, a + 0.5, torch.sigmoid(a))


def _block_size(T: int) -> int:
    """About √T (a power of two, at least 8): balances the in-block and across-block sequential steps."""
    return max(8, 1 << round(math.log2(max(T, 1)) / 2))


def _blocked_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t ⊙ h_{t−1} + b_t for all t, without autograd: a, b (T, B, H), h0 (B, H) → h (T, B, H)."""
    T, B, H = a.shape
    C = _block_size(T)
    N = -(-T // C)
    if N * C != T:  # pad with a = 1, b = 0 (state unchanged)
        a = F.pad(a, (0, 0, 0, 0, 0, N * C - T), value=1.0)
        b = F.pad(b, (0, 0, 0, 0, 0, N * C - T))
    a4, b4 = a.view(N, C, B, H), b.view(N, C, B, H)
    h_loc = torch.empty_like(b4)  # (N, C, B, H) each block's states if it started from 0
    P = torch.empty_like(a4)  # (N, C, B, H) running products of a within each block
    h_loc[:, 0], P[:, 0] = b4[:, 0], a4[:, 0]
    for i in range(1, C):  # all N blocks at once, one position at a time
        torch.addcmul(b4[:, i], a4[:, i], h_loc[:, i - 1], out=h_loc[:, i])
        torch.mul(P[:, i - 1], a4[:, i], out=P[:, i])
    starts = torch.empty(N, B, H, dtype=h0.dtype, device=h0.device)  # the state entering each block
    carry = h0
    for k in range(N):
        starts[k] = carry
        carry = torch.addcmul(h_loc[k, -1], P[k, -1], carry)
    return torch.addcmul(h_loc, P, starts[:, None]).view(N * C, B, H)[:T]


class _BlockedScan(torch.autograd.Function):
    """h = scan(a, b, h0) with an O(T) backward: λ_t = ∂ℓ/∂h_t + a_{t+1} λ_{t+1} is the same scan run
    backwards in time; then ∂ℓ/∂b_t = λ_t, ∂ℓ/∂a_t = λ_t h_{t−1}, ∂ℓ/∂h_0 = a_0 λ_0."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        h = _blocked_scan(a, b, h0)
        ctx.save_for_backward(a, h0, h)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, h0, h = ctx.saved_tensors
        a_next = torch.cat([a[1:], a.new_ones(1, *a.shape[1:])])  # links λ_t to λ_{t+1}
        lam = _blocked_scan(a_next.flip(0), grad_h.flip(0), torch.zeros_like(h0)).flip(0)
        h_prev = torch.cat([h0[None], h[:-1]])
        return lam * h_prev, lam, a[0] * lam[0]


def scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """All states of h_t = a_t ⊙ h_{t−1} + b_t at once: a, b (T, B, H), h0 (B, H) → h (T, B, H).

    The blocked parallel scan in the inputs' dtype (float32 for bfloat16/float16); differentiable once
    (``mode="loop"`` for higher derivatives).
    """
    if a.shape[0] == 0:
        return h0.new_zeros(0, *h0.shape)
    dtype = h0.dtype
    if dtype in (torch.bfloat16, torch.float16):
        a, b, h0 = a.float(), b.float(), h0.float()
    h: Tensor = _BlockedScan.apply(a, b, h0)  # type: ignore[no-untyped-call]
    return h.to(dtype)


SCAN_CHUNK = 16
LOG_A_MIN = (
    -40.0
)  # z below e^−40 ≈ 4e−18 counts as e^−40: changes h by < 4e−18·|h|, below float64 resolution


def _chunked_log_scan(log_a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t ⊙ h_{t−1} + b_t for all t, float64 tensors without autograd: (T, B, H) ×2, (B, H) → (T, B, H).

    Inside chunks of C = SCAN_CHUNK steps, with L the chunk's prefix sums of log a (log-space products),
    h_t = e^{L_t} ⊙ (h_start + Σ_{s≤t} e^{−L_s} ⊙ b_s): two cumsums, in parallel over every chunk. |L| ≤
    40·C = 640 keeps e^{±L} finite in float64, and the sums are dominated by their latest terms, so they
    round like the sequential recurrence (b may have any sign). A sequential pass over the T/C chunk
    boundaries then carries the state from chunk to chunk.
    """
    T, B, H = log_a.shape
    C = SCAN_CHUNK
    N = -(-T // C)
    if N * C != T:  # pad with a = 1, b = 0 (state unchanged)
        log_a = F.pad(log_a, (0, 0, 0, 0, 0, N * C - T))
        b = F.pad(b, (0, 0, 0, 0, 0, N * C - T))
    L = log_a.view(N, C, B, H).cumsum(1)  # (N, C, B, H) log of the products within each chunk
    P = torch.exp(L)  # products a_start … a_t
    h_loc = P * (b.view(N, C, B, H) * torch.exp(-L)).cumsum(1)  # state if the chunk started from 0
    starts = torch.empty(N, B, H, dtype=h0.dtype, device=h0.device)  # state before each chunk
    carry, P_end, h_end = h0, P[:, -1], h_loc[:, -1]
    for k in range(N):
        starts[k] = carry
        carry = torch.addcmul(h_end[k], P_end[k], carry)
    return (h_loc + P * starts[:, None]).view(N * C, B, H)[:T]


class _LogScan(torch.autograd.Function):
    """h = log_scan(log_a, b, h0) with an O(T) backward: the adjoint λ_t = ∂ℓ/∂h_t + a_{t+1} λ_{t+1} is the same
    kind of scan run backwards in time; then ∂ℓ/∂b_t = λ_t, ∂ℓ/∂log a_t = λ_t a_t h_{t−1}, ∂ℓ/∂h_0 = a_0 λ_0."""

    @staticmethod
    def forward(ctx: Any, log_a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        h = _chunked_log_scan(log_a, b, h0)
        ctx.save_for_backward(log_a, h0, h)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        log_a, h0, h = ctx.saved_tensors
        log_a_next = torch.cat(
            [log_a[1:], log_a.new_zeros(1, *log_a.shape[1:])]
        )  # links λ_t to λ_{t+1}
        lam = _chunked_log_scan(log_a_next.flip(0), grad_h.flip(0), torch.zeros_like(h0)).flip(0)
        a = torch.exp(log_a)
        h_prev = torch.cat([h0[None], h[:-1]])
        return lam * a * h_prev, lam, a[0] * lam[0]


def log_scan(log_a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """All states of h_t = a_t ⊙ h_{t−1} + b_t at once, from log a: log_a, b (T, B, H), h0 (B, H) → (T, B, H).

    Computed in float64 whatever the dtype and returned in h0's dtype; differentiable once (use
    ``mode="loop"`` for higher derivatives). log_a is clamped at LOG_A_MIN.
    """
    dtype = h0.dtype
    if log_a.shape[0] == 0:
        return h0.new_zeros(0, *h0.shape)
    h: Tensor = _LogScan.apply(  # type: ignore[no-untyped-call]
        log_a.double().clamp_min(LOG_A_MIN), b.double(), h0.double()
    )
    return h.to(dtype)


def _reverse_index(T: int, lengths: Tensor | None, device: Any) -> Tensor:
    """(T, B) time indices that reverse each sequence within its own length (padding stays in place)."""
    t = torch.arange(T, device=device)[:, None]  # (T, 1)
    if lengths is None:
        return T - 1 - t
    lens = lengths.to(device)[None, :]  # (1, B)
    return torch.where(t < lens, lens - 1 - t, t)


def _time_gather(a: Tensor, idx: Tensor) -> Tensor:
    """a (T, B, F) reordered in time per sequence: out[t, b] = a[idx[t, b], b]."""
    return a.gather(0, idx[..., None].expand_as(a))


def direction(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    b_ih: Tensor | None,
    lengths: Tensor | None = None,
    reverse: bool = False,
    mode: str = "scan",
    return_gates: bool = False,
) -> tuple[Tensor, Tensor, tuple[Tensor, ...] | None]:
    """One minGRU direction over x (T, B, I) from h0 (B, H) → (output (T, B, H), h_n (B, H), (z, n) or None).

    ``mode`` "scan" (blocked parallel scan), "logscan" (chunked log-space scan) or "loop" (sequential). Sequence b uses steps t < lengths[b];
    outputs and gates past that are zero; the reverse direction starts at each sequence's own end.
    """
    dtype = x.dtype
    if dtype in (torch.bfloat16, torch.float16):  # compute in float32, return in the input's dtype
        out, h_n, low = direction(
            x.float(),
            h0.float(),
            w_ih.float(),
            None if b_ih is None else b_ih.float(),
            lengths,
            reverse,
            mode,
            return_gates,
        )
        return (
            out.to(dtype),
            h_n.to(dtype),
            (None if low is None else tuple(v.to(dtype) for v in low)),
        )
    T, B = x.shape[0], x.shape[1]
    H = h0.shape[-1]
    if T == 0:
        empty = x.new_zeros(0, B, H)
        return empty, h0, ((empty, empty) if return_gates else None)
    if reverse:
        idx = _reverse_index(T, lengths, x.device)
        x = _time_gather(x, idx)  # each sequence reversed within its length
    a = F.linear(x, w_ih, b_ih)  # (T, B, 2H)
    a_z, a_n = torch.split(a, H, dim=-1)
    valid = None
    if lengths is not None:
        valid = (torch.arange(T)[:, None] < lengths[None, :]).to(x.device)[..., None]  # (T, B, 1)
    if mode == "scan":
        z = torch.sigmoid(a_z)
        b = (1.0 - z) * g(a_n)
        if (
            valid is not None
        ):  # past the end: a = 1, b = 0 (the state stays; those outputs are zeroed)
            z = torch.where(valid, z, 1.0)
            b = torch.where(valid, b, 0.0)
        out = scan(z, b, h0)
    elif mode == "logscan":
        log_z = -F.softplus(-a_z)  # log σ(a_z), exact also where σ(a_z) underflows
        b = torch.sigmoid(-a_z) * g(a_n)  # (1 − z) ⊙ n
        if (
            valid is not None
        ):  # past the end: a = 1, b = 0 (the state stays; those outputs are zeroed)
            log_z = torch.where(valid, log_z, 0.0)
            b = torch.where(valid, b, 0.0)
        out = log_scan(log_z, b, h0)
    elif mode == "loop":
        # unbind, not z[t]: indexing's backward would add a full (T, B, H) gradient per step
        z_t, n_t = torch.sigmoid(a_z).unbind(0), g(a_n).unbind(0)
        outs, h = [], h0
        for t in range(T):
            h = n_t[t] + z_t[t] * (h - n_t[t])  # z ⊙ h + (1 − z) ⊙ n
            outs.append(h)
        out = torch.stack(outs)
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if lengths is None:
        h_n = out[-1]
    else:
        last = (lengths.to(x.device) - 1)[None, :, None].expand(1, B, H)
        h_n = out.gather(0, last)[0]
        assert valid is not None
        out = out * valid
    gates: tuple[Tensor, ...] | None = None
    if return_gates:
        z, n = torch.sigmoid(a_z), g(a_n)
        gates = (z, n) if valid is None else (z * valid, n * valid)
    if reverse:
        out = _time_gather(out, idx)
        if gates is not None:
            gates = tuple(_time_gather(v, idx) for v in gates)
    return out, h_n, gates
