"""The digit recognizer: feature frames → grukit.GRU → linear head on the last state → 10 logits.

One class covers both shipped models (``DigitsConfig.bidirectional``):
- offline (``digits-fsdd``): bidirectional GRU, utterance normalization; the head reads the top layer's
  forward state at the last frame concatenated with its backward state at the first frame (h_n).
- streaming (``digits-fsdd-stream``): unidirectional GRU, running (causal) normalization; the head reads
  the top layer's state, so after every frame :meth:`DigitRecognizer.step` gives a running prediction, and
  after the last frame it equals the offline :meth:`forward` of the same model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

import grukit

from .data import FeatureSpec

NORMALIZATIONS = ("utterance", "running")
POOLINGS = ("last", "mean")


@dataclass
class DigitsConfig:
    """Every constructor argument of :class:`DigitRecognizer` (features + network), saved with the model."""

    hidden_size: int = 64
    num_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.1
    n_classes: int = 10
    sample_rate: int = 8000
    n_fft: int = 256
    hop_length: int = 80
    n_mels: int = 40
    deltas: bool = True
    normalization: str = "utterance"
    prior_frames: float = 20.0
    feature_mean: list[float] | None = None
    feature_var: list[float] | None = None
    labels: list[str] = field(default_factory=lambda: [str(d) for d in range(10)])
    pooling: str = "last"


class DigitRecognizer(nn.Module):
    """Spoken-digit classifier over normalized feature frames.

    ``forward(x, lengths=None)``: x (B, T, F) normalized features (F = ``feature_spec.n_features``),
    lengths (B,) valid frames per row (None = all T) → logits (B, n_classes).
    ``step(x_t, h=None)``: x_t (B, F) one frame → (logits (B, n_classes), h (num_layers, B, H));
    unidirectional models only.
    """

    def __init__(
        self,
        hidden_size: int = 64,
        num_layers: int = 2,
        bidirectional: bool = True,
        dropout: float = 0.1,
        n_classes: int = 10,
        sample_rate: int = 8000,
        n_fft: int = 256,
        hop_length: int = 80,
        n_mels: int = 40,
        deltas: bool = True,
        normalization: str = "utterance",
        prior_frames: float = 20.0,
        feature_mean: list[float] | None = None,
        feature_var: list[float] | None = None,
        labels: list[str] | None = None,
        pooling: str = "last",
    ) -> None:
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            )
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        labels = list(labels) if labels is not None else [str(d) for d in range(n_classes)]
        if len(labels) != n_classes:
            raise ValueError(f"labels must have n_classes={n_classes} entries, got {len(labels)}")
        self._config = DigitsConfig(
            hidden_size,
            num_layers,
            bool(bidirectional),
            float(dropout),
            n_classes,
            sample_rate,
            n_fft,
            hop_length,
            n_mels,
            bool(deltas),
            normalization,
            float(prior_frames),
            None if feature_mean is None else [float(v) for v in feature_mean],
            None if feature_var is None else [float(v) for v in feature_var],
            labels,
            pooling,
        )
        spec = self.feature_spec
        if normalization == "running":
            for name, v in (("feature_mean", feature_mean), ("feature_var", feature_var)):
                if v is None or len(v) != spec.n_features:
                    got = None if v is None else len(v)
                    raise ValueError(
                        f"running normalization needs {name} of length {spec.n_features} (the "
                        f"training set's per-feature statistics), got {got}"
                    )
        self.gru = grukit.GRU(
            spec.n_features,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        self.head = nn.Linear((2 if bidirectional else 1) * hidden_size, n_classes)

    # ------------------------------------------------------------------------------------------ config
    @property
    def config(self) -> DigitsConfig:
        return dataclasses.replace(self._config)

    @classmethod
    def from_config(cls, config: DigitsConfig | dict) -> DigitRecognizer:
        cfg = dataclasses.asdict(config) if isinstance(config, DigitsConfig) else dict(config)
        return cls(**cfg)

    @property
    def feature_spec(self) -> FeatureSpec:
        c = self._config
        return FeatureSpec(c.sample_rate, c.n_fft, c.hop_length, c.n_mels, c.deltas)

    @property
    def streamable(self) -> bool:
        """Whether this model can run frame by frame (unidirectional GRU and causal normalization)."""
        return not self._config.bidirectional and self._config.normalization == "running"

    # ----------------------------------------------------------------------------------------- compute
    def _last_state(self, h_n: Tensor) -> Tensor:
        """h_n (L·D, B, H) → the top layer's final states (B, D·H) (forward, then backward)."""
        D = 2 if self._config.bidirectional else 1
        return torch.cat(list(h_n[-D:]), dim=-1)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x (B, T, F), lengths (B,) or None → logits (B, n_classes)."""
        if x.dim() != 3 or x.shape[-1] != self.feature_spec.n_features:
            raise ValueError(
                f"DigitRecognizer expected features of shape (B, T, {self.feature_spec.n_features}), "
                f"got {tuple(x.shape)}"
            )
        out, h_n = self.gru(x, lengths=lengths)  # out (B, T, D·H), zero past lengths
        if self._config.pooling == "mean":
            n = (
                torch.full((x.shape[0],), x.shape[1], device=x.device)
                if lengths is None
                else lengths.to(x.device)
            )
            return self.head(out.sum(1) / n[:, None].to(out.dtype))  # mean over valid frames
        return self.head(self._last_state(h_n))

    def step(self, x_t: Tensor, state: StreamState | None = None) -> tuple[Tensor, StreamState]:
        """One frame x_t (B, F) → (logits (B, n_classes) given the frames so far, new state); unidirectional
        only. ``state`` holds the GRU state h (num_layers, B, H) and, for mean pooling, the running sum of
        the top layer's outputs and the frame count."""
        if self._config.bidirectional:
            raise ValueError(
                "DigitRecognizer.step needs a unidirectional model; this one is bidirectional "
                "(use the streaming model digits-fsdd-stream)"
            )
        h = None if state is None else state.h
        y_t, h = self.gru.step(x_t, h)  # y_t (B, H)
        if self._config.pooling == "mean":
            total = y_t if state is None else state.total + y_t
            count = 1 if state is None else state.count + 1
            return self.head(total / count), StreamState(h, total, count)
        return self.head(y_t), StreamState(h, y_t, 1 if state is None else state.count + 1)


@dataclass
class StreamState:
    """What :meth:`DigitRecognizer.step` carries between frames: GRU state h (num_layers, B, H), the sum of
    the top layer's outputs so far (B, H) (the latest output for last-state pooling) and the frame count."""

    h: Tensor
    total: Tensor
    count: int
