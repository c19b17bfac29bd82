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

import dataclasses
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .. import _checks

_MODES = ("scan", "logscan", "loop")


class MinGRUGates(NamedTuple):
    """minGRU gate values, each (num_layers, D, T, B, H), time-major; zero past a sequence's length."""

    z: Tensor
    n: Tensor


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
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        h = _blocked_scan(a, b, h0)
        ctx.save_for_backward(a, h0, h)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor):
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
    return _BlockedScan.apply(a, b, h0).to(dtype)


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
    def forward(ctx, log_a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        h = _chunked_log_scan(log_a, b, h0)
        ctx.save_for_backward(log_a, h0, h)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor):
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
    h = _LogScan.apply(log_a.double().clamp_min(LOG_A_MIN), b.double(), h0.double())
    return h.to(dtype)


def _reverse_index(T: int, lengths: Tensor | None, device) -> Tensor:
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
):
    """One minGRU direction over x (T, B, I) from h0 (B, H) → (output (T, B, H), h_n (B, H), (z, n) or None).

    ``mode`` "scan" (blocked parallel scan), "logscan" (chunked log-space scan) or "loop" (sequential). Sequence b uses steps t < lengths[b];
    outputs and gates past that are zero; the reverse direction starts at each sequence's own end.
    """
    dtype = x.dtype
    if dtype in (torch.bfloat16, torch.float16):  # compute in float32, return in the input's dtype
        out, h_n, gates = direction(
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
            (None if gates is None else tuple(v.to(dtype) for v in gates)),
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
    a_z, a_n = a.split(H, dim=-1)
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
        z, n = torch.sigmoid(a_z).unbind(0), g(a_n).unbind(0)
        outs, h = [], h0
        for t in range(T):
            h = n[t] + z[t] * (h - n[t])  # z ⊙ h + (1 − z) ⊙ n
            outs.append(h)
        out = torch.stack(outs)
    else:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if lengths is None:
        h_n = out[-1]
    else:
        last = (lengths.to(x.device) - 1)[None, :, None].expand(1, B, H)
        h_n = out.gather(0, last)[0]
        out = out * valid
    gates = None
    if return_gates:
        z, n = torch.sigmoid(a_z), g(a_n)
        gates = (z, n) if valid is None else (z * valid, n * valid)
    if reverse:
        out = _time_gather(out, idx)
        if gates is not None:
            gates = tuple(_time_gather(v, idx) for v in gates)
    return out, h_n, gates


@dataclasses.dataclass
class MinGRUConfig:
    """Every constructor argument of :class:`MinGRU` (device excluded); saved with the model."""

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    dtype: str = "float32"


class MinGRU(nn.Module):
    """Stacked minGRU with the layer API of :class:`grukit.GRU` (see the module docstring for the math).

    ``mingru(input, hx=None, lengths=None, return_gates=False, mode="scan") -> (output, h_n[, gates])``

    Shapes (D = 2 if bidirectional else 1, L = num_layers), as for ``grukit.GRU``:
        input  (T, B, I), (B, T, I) if batch_first, (T, I) unbatched, or a PackedSequence
        hx     (L·D, B, H) or (L·D, H) unbatched; None means zeros (any sign is fine)
        output (T, B, D·H); h_n (L·D, B, H); gates MinGRUGates(z, n), each (L, D, T, B, H)
    ``mode="scan"`` runs the blocked parallel scan, ``mode="logscan"`` the paper's log-space scan (chunked,
    float64), ``mode="loop"`` the sequential recurrence (all equal to rounding); ``step(x_t, h)`` streams one step. Parameters: ``weight_ih_l{k}[_reverse]`` (2H, in) and
    ``bias_ih_l{k}[_reverse]`` (2H), rows stacked z, n; ``dropout`` acts between layers in training.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.input_size = _checks.positive_int("input_size", input_size)
        self.hidden_size = _checks.positive_int("hidden_size", hidden_size)
        self.num_layers = _checks.positive_int("num_layers", num_layers)
        self.dropout = _checks.probability("dropout", dropout)
        self.bias, self.batch_first, self.bidirectional = (
            bool(bias),
            bool(batch_first),
            bool(bidirectional),
        )
        self.num_directions = 2 if bidirectional else 1
        H, D = hidden_size, self.num_directions
        kw = {"device": device, "dtype": dtype}
        self._param_names: list[tuple[str, str | None]] = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else D * H
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                w, b = f"weight_ih{sfx}", (f"bias_ih{sfx}" if bias else None)
                setattr(self, w, nn.Parameter(torch.empty(2 * H, layer_in, **kw)))
                if b:
                    setattr(self, b, nn.Parameter(torch.empty(2 * H, **kw)))
                self._param_names.append((w, b))
        self.reset_parameters()

    @property
    def config(self) -> MinGRUConfig:
        dtype = str(self.weight_ih_l0.dtype).replace("torch.", "")
        return MinGRUConfig(
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.bias,
            self.batch_first,
            self.dropout,
            self.bidirectional,
            dtype,
        )

    @classmethod
    def from_config(cls, config: MinGRUConfig | dict, device=None) -> MinGRU:
        cfg = dataclasses.asdict(config) if isinstance(config, MinGRUConfig) else dict(config)
        dtype = getattr(torch, cfg.pop("dtype", "float32"))
        return cls(**cfg, device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        """Uniform(−1/√I_l, 1/√I_l) per layer (I_l = that layer's input size), like nn.Linear."""
        for w_name, b_name in self._param_names:
            w = getattr(self, w_name)
            bound = 1.0 / math.sqrt(w.shape[1])
            nn.init.uniform_(w, -bound, bound)
            if b_name:
                nn.init.uniform_(getattr(self, b_name), -bound, bound)

    def layer_weights(self, layer: int, direction: int = 0) -> tuple[Tensor, Tensor | None]:
        """(weight_ih, bias_ih) of one layer and direction (bias None without bias)."""
        w, b = self._param_names[layer * self.num_directions + direction]
        return getattr(self, w), (getattr(self, b) if b else None)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (
            ("num_layers", 1),
            ("bias", True),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
        ):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s

    # ---------------------------------------------------------------------------------------- checks
    def _check_x(self, x: Tensor, name: str) -> None:
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"MinGRU expected {name} of size {self.input_size} in its last dimension, "
                f"got {x.shape[-1]}"
            )
        _checks.same_dtype("MinGRU", name, x, self.weight_ih_l0)

    def _check_hx(self, hx, B: int, unbatched: bool, like: Tensor) -> Tensor:
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        if hx is None:
            return like.new_zeros(LD, B, H)
        hx = _checks.tensor("hx", hx)
        want = (LD, H) if unbatched else (LD, B, H)
        if tuple(hx.shape) != want:
            raise ValueError(
                f"MinGRU expected hx of shape {want} (num_layers·D, {'' if unbatched else 'B, '}H), "
                f"got {tuple(hx.shape)}"
            )
        _checks.same_dtype("MinGRU", "hx", hx, self.weight_ih_l0)
        return hx.unsqueeze(1) if unbatched else hx

    # ---------------------------------------------------------------------------------------- forward
    def forward(
        self,
        input,
        hx: Tensor | None = None,
        lengths=None,
        return_gates: bool = False,
        mode: str = "scan",
    ):
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError(
                    "MinGRU got both a PackedSequence and lengths; a PackedSequence carries its "
                    "own lengths"
                )
            template = input
            x, lengths = pad_packed_sequence(input, batch_first=False)  # (T, B, I), original order
            unbatched = batch_first = False
            self._check_x(x, "input")
        else:
            x = _checks.tensor("input", input)
            if x.dim() not in (2, 3):
                raise ValueError(
                    f"MinGRU expected input of 3 dimensions ({'B, T' if self.batch_first else 'T, B'}, I) "
                    f"or 2 dimensions (T, I) unbatched, got {x.dim()} dimensions"
                )
            self._check_x(x, "input")
            unbatched = x.dim() == 2
            batch_first = self.batch_first and not unbatched
            x = x.unsqueeze(1) if unbatched else (x.transpose(0, 1) if batch_first else x)
        T, B = x.shape[0], x.shape[1]
        if lengths is not None:
            lengths = _checks.lengths(lengths, B, T)
        h0 = self._check_hx(hx, B, unbatched, x)

        D, layer_in = self.num_directions, x
        h_n, gate_layers = [], []
        for layer in range(self.num_layers):
            outs, layer_gates = [], []
            for d in range(D):
                w, b = self.layer_weights(layer, d)
                out, h, gt = direction(
                    layer_in, h0[layer * D + d], w, b, lengths, d == 1, mode, return_gates
                )
                outs.append(out)
                h_n.append(h)
                layer_gates.append(gt)
            layer_in = outs[0] if D == 1 else torch.cat(outs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, training=True)
            gate_layers.append(layer_gates)
        out, h_n = layer_in, torch.stack(h_n)

        if packed:
            order = template.sorted_indices
            out_sorted = out if order is None else out.index_select(1, order)
            lens_sorted = lengths if order is None else lengths.index_select(0, order.cpu())
            data = pack_padded_sequence(out_sorted, lens_sorted, enforce_sorted=True)
            output = PackedSequence(
                data.data, data.batch_sizes, template.sorted_indices, template.unsorted_indices
            )
        elif unbatched:
            output, h_n = out.squeeze(1), h_n.squeeze(1)
        else:
            output = out.transpose(0, 1) if batch_first else out
        if return_gates:
            gates = MinGRUGates(
                *(
                    torch.stack([torch.stack([gt[k] for gt in lg]) for lg in gate_layers])
                    for k in range(2)
                )
            )
            return output, h_n, gates
        return output, h_n

    # -------------------------------------------------------------------------------------- streaming
    def step(self, x_t: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step for streaming: x_t (B, I) or (I,), h (L, B, H) or (L, H) → (y_t (B, H), h_new).

        The sequential recurrence; feeding a sequence step by step matches the scan of the whole sequence.
        Unidirectional only.
        """
        if self.bidirectional:
            raise ValueError(
                "MinGRU.step needs a unidirectional MinGRU: the reverse direction depends on "
                "future inputs; run the whole sequence with mingru(input) instead"
            )
        x_t = _checks.tensor("x_t", x_t)
        if x_t.dim() not in (1, 2):
            raise ValueError(
                f"MinGRU.step expected x_t of shape (B, {self.input_size}) or ({self.input_size},), "
                f"got {x_t.dim()} dimensions"
            )
        self._check_x(x_t, "x_t")
        unbatched = x_t.dim() == 1
        x = x_t.unsqueeze(0) if unbatched else x_t
        h0 = self._check_hx(h, x.shape[0], unbatched, x)
        H, new_h = self.hidden_size, []
        for layer in range(self.num_layers):
            w, b = self.layer_weights(layer)
            a_z, a_n = F.linear(x, w, b).split(H, dim=-1)
            z, n = torch.sigmoid(a_z), g(a_n)
            x = n + z * (h0[layer] - n)  # z ⊙ h + (1 − z) ⊙ n
            new_h.append(x)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        h_new = torch.stack(new_h)
        if unbatched:
            return new_h[-1].squeeze(0), h_new.squeeze(1)
        return new_h[-1], h_new
