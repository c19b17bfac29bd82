"""The GRU equations: one step, both reset placements.

For input x (B, I) and previous state h (B, H), with torch's parameter layout (rows stacked r, z, n)::

    z  = σ(W_iz x + b_iz + W_hz h + b_hz)        update gate: the share of the OLD state kept
    r  = σ(W_ir x + b_ir + W_hr h + b_hr)        reset gate
    n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))     reset_after=True  (torch, cuDNN, Keras default)
    n  = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)     reset_after=False (Cho et al. 2014)
    h' = z ⊙ h + (1 − z) ⊙ n

Many texts (and the minGRU paper) write h' = (1 − z) ⊙ h + z ⊙ n: the same model with z renamed 1 − z.
This file is the readable definition; `grukit.kernels` holds the fast paths that must agree with it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _checks


class GateValues(NamedTuple):
    """The gate activations of one step, each (B, H)."""

    z: Tensor
    r: Tensor
    n: Tensor


def gru_step(
    gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, reset_after: bool
) -> tuple[Tensor, GateValues]:
    """One GRU step from the input projection ``gi = x W_ihᵀ + b_ih`` (B, 3H) and state ``h`` (B, H).

    Returns ``(h', GateValues(z, r, n))``. Splitting off the input projection lets a layer compute it for
    all time steps with one matrix product.
    """
    H = h.shape[-1]
    gi_r, gi_z, gi_n = gi.split(H, dim=-1)  # each (B, H)
    if reset_after:
        gh = F.linear(h, w_hh, b_hh)  # (B, 3H)
        gh_r, gh_z, gh_n = gh.split(H, dim=-1)
        r = torch.sigmoid(gi_r + gh_r)
        z = torch.sigmoid(gi_z + gh_z)
        n = torch.tanh(gi_n + r * gh_n)
    else:
        b_rz, b_n = (None, None) if b_hh is None else (b_hh[: 2 * H], b_hh[2 * H :])
        gh_rz = F.linear(h, w_hh[: 2 * H], b_rz)  # (B, 2H)
        gh_r, gh_z = gh_rz.split(H, dim=-1)
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


@dataclasses.dataclass
class GRUCellConfig:
    """Every constructor argument of :class:`GRUCell` (device excluded); saved with the model."""

    input_size: int
    hidden_size: int
    bias: bool = True
    reset_after: bool = True
    backend: str = "auto"
    dtype: str = "float32"


class GRUCell(nn.Module):
    """A single GRU step, ``cell(x, h=None) -> h'``; state_dict interchangeable with ``torch.nn.GRUCell``.

    Args:
        input_size: I, features of x.
        hidden_size: H, features of the state.
        bias: learn b_ih and b_hh.
        reset_after: where the reset gate acts (see the module docstring); True matches torch.
        backend: "auto" (fused CPU kernel when it supports the call), "fused" (required) or "torch".

    Shapes: x (B, I) or (I,); h (B, H) or (H,), None means zeros; returns (B, H) or (H,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        reset_after: bool = True,
        device=None,
        dtype=None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        _checks.positive_int("input_size", input_size)
        _checks.positive_int("hidden_size", hidden_size)
        _checks.backend(backend)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.bias, self.reset_after, self.backend = bool(bias), bool(reset_after), backend
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size, **kw))
            self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    @property
    def config(self) -> GRUCellConfig:
        dtype = str(self.weight_ih.dtype).replace("torch.", "")
        return GRUCellConfig(
            self.input_size, self.hidden_size, self.bias, self.reset_after, self.backend, dtype
        )

    @classmethod
    def from_config(cls, config: GRUCellConfig | dict, device=None) -> GRUCell:
        cfg = dataclasses.asdict(config) if isinstance(config, GRUCellConfig) else dict(config)
        dtype = getattr(torch, cfg.pop("dtype", "float32"))
        return cls(**cfg, device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        """Uniform(−1/√H, 1/√H) for every parameter, as torch does."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        from ..kernels import dispatch

        # Direct dict reads (nn.Module.__getattr__ costs ~0.5 µs per name); getattr when a name is not a plain
        # registered parameter (parametrizations, weight_norm hooks, bias=False).
        params = self._parameters
        w, w_hh, b_ih, b_hh = (
            params.get(n) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )
        if w is None or w_hh is None or (self.bias and (b_ih is None or b_hh is None)):
            w, w_hh, b_ih, b_hh = self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
        if (
            h is not None
            and type(x) is Tensor
            and type(h) is Tensor
            and x.dim() == 2
            and x.dtype == w.dtype
            and h.dtype == w.dtype
            and x.shape[1] == self.input_size
            and h.shape == (x.shape[0], self.hidden_size)
            and w.is_floating_point()
        ):
            unbatched = (
                False  # the common batched call: all of _checks.cell_inputs' checks hold, skip it
            )
        else:
            x, h, unbatched = _checks.cell_inputs(
                "GRUCell", x, h, self.input_size, self.hidden_size, w
            )
        h_new = dispatch(
            "cell",
            self.backend,
            x=x,
            h=h,
            w_ih=w,
            w_hh=w_hh,
            b_ih=b_ih,
            b_hh=b_hh,
            reset_after=self.reset_after,
        )
        return h_new.squeeze(0) if unbatched else h_new

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if not self.reset_after:
            s += ", reset_after=False"
        return s
