"""MusicGRU: a GRU over piano-roll frames; the output at step t gives 88 independent Bernoulli logits for
frame t + 1. And the benchmark's NLL per time step.

NLL per time step (the standard metric of the Boulanger-Lewandowski sets, natural log):

    NLL = Σ_sequences Σ_{t=2..T} Σ_{k=1..88} BCE(p_{t,k}, x_{t,k})  /  Σ_sequences (T − 1)

The first frame of each sequence is not predicted (it is only input); the binary cross-entropy is summed
over the 88 keys of a frame and averaged over all predicted frames of the split (not per sequence).
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


class MusicGRU(nn.Module):
    """``model(x, h=None) -> (logits, h_n)``: x (B, T, 88) binary frames, logits (B, T, 88) for frames
    1..T (i.e. ``logits[:, t]`` predicts ``x[:, t + 1]``), h / h_n (num_layers, B, H)."""

    def __init__(self, hidden_size: int = 256, num_layers: int = 1, dropout: float = 0.0,
                 input_dropout: float = 0.0, zoneout: float = 0.0, n_pitches: int = N_PITCHES) -> None:
        super().__init__()
        for name, p in (("dropout", dropout), ("input_dropout", input_dropout), ("zoneout", zoneout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        if hidden_size < 1 or num_layers < 1 or n_pitches < 1:
            raise ValueError(f"hidden_size, num_layers and n_pitches must be positive, got "
                             f"{hidden_size}, {num_layers}, {n_pitches}")
        self._config = MusicGRUConfig(int(hidden_size), int(num_layers), float(dropout), float(input_dropout),
                                      float(zoneout), int(n_pitches))
        extra = {"zoneout": float(zoneout)} if zoneout > 0 else {}
        self.gru = GRU(n_pitches, hidden_size, num_layers=num_layers, batch_first=True,
                       dropout=dropout if num_layers > 1 else 0.0, **extra)
        self.in_drop = nn.Dropout(input_dropout)
        self.out_drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, n_pitches)

    @property
    def config(self) -> MusicGRUConfig:
        return self._config

    @classmethod
    def from_config(cls, config: MusicGRUConfig | dict[str, Any]) -> "MusicGRU":
        if isinstance(config, dict):
            config = MusicGRUConfig(**config)
        return cls(**dataclasses.asdict(config))

    def forward(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.dim() != 3 or x.shape[-1] != self.config.n_pitches:
            raise ValueError(f"MusicGRU expected frames (B, T, {self.config.n_pitches}), got {tuple(x.shape)}")
        y, h_n = self.gru(self.in_drop(x), h)  # y (B, T, H)
        return self.head(self.out_drop(y)), h_n  # (B, T, 88)

    def step(self, frame: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step for generation: frame (B, 88) → (logits for the next frame (B, 88), h (L, B, H))."""
        y, h = self.gru.step(frame, h)  # y (B, H)
        return self.head(y), h

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
    logits, _ = model(x[:, :-1])
    return nll_sums(logits, x[:, 1:], predicted_mask(lengths, x.shape[1] - 1))
