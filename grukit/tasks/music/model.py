"""MusicGRU: a GRU over piano-roll frames; the output at step t gives 88 independent Bernoulli logits for
frame t + 1. And the benchmark's NLL per time step.

NLL per time step (the standard metric of the Boulanger-Lewandowski sets, natural log):

    NLL = Σ_sequences Σ_{t=2..T} Σ_{k=1..88} BCE(p_{t,k}, x_{t,k})  /  Σ_sequences (T − 1)

The first frame of each sequence is not predicted (it is only input); the binary cross-entropy is summed
over the 88 keys of a frame and averaged over all predicted frames of the split (not per sequence).

Output heads:
    independent (``frame_ar=False``, as in Chung et al. 2014): p(x_{t+1} | h_t) = Π_k σ(±(W h_t + b)_k).
    autoregressive within the frame (``frame_ar=True``, a fully visible sigmoid belief net per frame,
    Frey 1998 / the "FVSBN" of Larochelle & Murray 2011, conditioned on the GRU state like Boulanger-
    Lewandowski's RNN-NADE): key k of frame t + 1 also sees the keys below it in the same frame,
        logit_{t,k} = (W h_t + b)_k + Σ_{j<k} A_{kj} x_{t+1,j}    (A strictly lower triangular)
    which is still an exact likelihood (chain rule over keys), computed in one pass with teacher forcing;
    sampling draws the keys of a frame one by one, lowest pitch first.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...nn import GRU
from .data import N_PITCHES


@dataclasses.dataclass
class MusicGRUConfig:
    """Every constructor argument of :class:`MusicGRU`."""

    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.0  # on the GRU's outputs (before the head) and between layers
    input_dropout: float = 0.0  # on the input frames (drops notes of the conditioning frame)
    zoneout: float = 0.0  # grukit.GRU zoneout (0 = plain GRU)
    n_pitches: int = N_PITCHES
    frame_ar: bool = False  # autoregressive-within-frame output head (see the module docstring)


class MusicGRU(nn.Module):
    """``model(x, h=None, next_frames=None) -> (logits, h_n)``: x (B, T, 88) binary frames, logits (B, T, 88)
    for the following frames (``logits[:, t]`` predicts ``x[:, t + 1]``), h / h_n (num_layers, B, H).

    With ``frame_ar=True`` the logits of a frame depend on its own lower keys, so ``next_frames`` (B, T, 88)
    — the frames being predicted, i.e. ``x[:, 1:]`` for inputs ``x[:, :-1]`` — is required.
    """

    ar_mask: torch.Tensor  # a buffer (frame_ar models only)

    def __init__(
        self,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        zoneout: float = 0.0,
        n_pitches: int = N_PITCHES,
        frame_ar: bool = False,
    ) -> None:
        super().__init__()
        for name, p in (
            ("dropout", dropout),
            ("input_dropout", input_dropout),
            ("zoneout", zoneout),
        ):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        if hidden_size < 1 or num_layers < 1 or n_pitches < 1:
            raise ValueError(
                f"hidden_size, num_layers and n_pitches must be positive, got "
                f"{hidden_size}, {num_layers}, {n_pitches}"
            )
        self._config = MusicGRUConfig(
            int(hidden_size),
            int(num_layers),
            float(dropout),
            float(input_dropout),
            float(zoneout),
            int(n_pitches),
            bool(frame_ar),
        )
        extra: dict[str, Any] = {"zoneout": float(zoneout)} if zoneout > 0 else {}
        self.gru = GRU(
            n_pitches,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            **extra,
        )
        self.in_drop = nn.Dropout(input_dropout)
        self.out_drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, n_pitches)
        if frame_ar:
            self.ar_weight = nn.Parameter(
                torch.zeros(n_pitches, n_pitches)
            )  # used strictly below the diagonal
            self.register_buffer(
                "ar_mask", torch.ones(n_pitches, n_pitches).tril(-1), persistent=False
            )

    @property
    def config(self) -> MusicGRUConfig:
        return self._config

    @classmethod
    def from_config(cls, config: MusicGRUConfig | dict[str, Any]) -> MusicGRU:
        if isinstance(config, dict):
            config = MusicGRUConfig(**config)
        return cls(**dataclasses.asdict(config))

    def forward(
        self, x: Tensor, h: Tensor | None = None, next_frames: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        if x.dim() != 3 or x.shape[-1] != self.config.n_pitches:
            raise ValueError(
                f"MusicGRU expected frames (B, T, {self.config.n_pitches}), got {tuple(x.shape)}"
            )
        y, h_n = self.gru(self.in_drop(x), h)  # y (B, T, H)
        logits = self.head(self.out_drop(y))  # (B, T, 88)
        if self.config.frame_ar:
            if next_frames is None or next_frames.shape != x.shape:
                got = None if next_frames is None else tuple(next_frames.shape)
                raise ValueError(
                    f"a frame_ar MusicGRU needs next_frames of the input's shape {tuple(x.shape)} "
                    f"(the frames being predicted), got {got}"
                )
            logits = logits + F.linear(
                next_frames, self.ar_weight * self.ar_mask
            )  # key k sees keys j < k
        return logits, h_n

    def step(self, frame: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step for generation: frame (B, 88) → (the head's logits for the next frame (B, 88), h (L, B, H)).

        For ``frame_ar`` models these are the logits before the within-frame term; use :meth:`sample_frame`.
        """
        y, h = self.gru.step(frame, h)  # y (B, H)
        return self.head(y), h

    def sample_frame(
        self, logits: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw the next frame (B, 88) from the head's ``logits`` (B, 88): independent keys, or key by key
        (lowest pitch first) for ``frame_ar`` models."""
        if not self.config.frame_ar:
            return torch.bernoulli(torch.sigmoid(logits / temperature), generator=generator)
        a = self.ar_weight * self.ar_mask  # (88, 88)
        frame = torch.zeros_like(logits)
        for k in range(logits.shape[-1]):
            lk = logits[:, k] + frame @ a[k]  # (B,): keys ≥ k of `frame` are still 0
            frame[:, k] = torch.bernoulli(torch.sigmoid(lk / temperature), generator=generator)
        return frame

    @torch.no_grad()
    def init_output_bias(self, frames: Tensor) -> None:
        """Set the head's bias to the log-odds of each key being on in ``frames`` (N, 88) (a sensible start)."""
        p = frames.float().mean(0).clamp(1e-4, 1 - 1e-4)
        self.head.bias.copy_(torch.log(p) - torch.log1p(-p))


def nll_sums(logits: Tensor, targets: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Summed BCE over keys and masked frames, and the number of frames counted.

    logits, targets (B, T, 88); mask (B, T) bool/0-1 (frames to count). → (Σ BCE (scalar), n_frames (scalar)).
    """
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(-1)  # (B, T)
    mask = mask.to(bce.dtype)
    return (bce * mask).sum(), mask.sum()


def predicted_mask(lengths: Tensor, steps: int) -> Tensor:
    """(B, steps) bool: True where position t predicts a real frame, i.e. t < length − 1."""
    return torch.arange(steps)[None, :] < (lengths[:, None] - 1)


def sequence_nll(model: MusicGRU, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """(Σ BCE, number of predicted frames) of padded full sequences x (B, T, 88) with ``lengths`` (B,)."""
    if x.shape[1] < 2:
        z = x.new_zeros(())
        return z, z
    logits, _ = model(x[:, :-1], next_frames=x[:, 1:])
    return nll_sums(logits, x[:, 1:], predicted_mask(lengths, x.shape[1] - 1))
