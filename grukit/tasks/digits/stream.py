"""Streaming recognition: audio arrives in chunks, features are computed frame by frame as soon as a frame's
samples are complete (no look-ahead), normalized causally, and fed to the unidirectional GRU with its step
API; a running prediction is available after every frame. After the last frame the prediction equals the
offline prediction of the same model on the whole file (same frames, same normalization, same GRU math).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ...errors import UserInputError
from . import data as D
from .model import DigitRecognizer, StreamState


@dataclass
class Update:
    """The running prediction after the audio received so far."""

    time_s: float  # audio received so far (seconds)
    frames: int  # feature frames processed so far
    label: str
    prob: float
    probs: np.ndarray  # (n_classes,)


class StreamingRecognizer:
    """Feed samples with :meth:`push` (any chunk sizes); read :attr:`logits` / :meth:`update` at any time.

    Holds only the samples of the next incomplete frame, the previous raw frame (for the delta), the running
    normalization sums and the model's step state (GRU state, pooled outputs)."""

    def __init__(self, model: DigitRecognizer) -> None:
        if not model.streamable:
            c = model.config
            raise UserInputError(
                f"streaming needs a unidirectional model with running normalization, got "
                f"bidirectional={c.bidirectional}, normalization={c.normalization!r}"
            )
        self.model = model.eval()
        self.spec = model.feature_spec
        c = model.config
        self.normalizer = D.RunningNormalizer(c.feature_mean, c.feature_var, c.prior_frames)
        self.pending = np.zeros(0, dtype=np.float32)  # samples from the start of the next frame on
        self.prev_raw: np.ndarray | None = None
        self.state: StreamState | None = None  # DigitRecognizer.step's state
        self.logits: torch.Tensor | None = None  # (n_classes,) after the latest frame
        self.frames = 0
        self.samples = 0
        self.peak = 0.0

    @torch.no_grad()
    def push(self, samples: np.ndarray) -> int:
        """Add mono samples (at the model's rate); runs every frame they complete. Returns frames added."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size and not np.isfinite(x).all():
            raise UserInputError("audio contains NaN or infinite samples")
        self.samples += x.size
        if x.size:
            self.peak = max(self.peak, float(np.abs(x).max()))
        self.pending = np.concatenate([self.pending, x])
        n_fft, hop = self.spec.n_fft, self.spec.hop_length
        if self.pending.size < n_fft:
            return 0
        n_new = 1 + (self.pending.size - n_fft) // hop
        raw = D.log_mel(self.pending[: (n_new - 1) * hop + n_fft], self.spec)  # (n_new, n_mels)
        self.pending = self.pending[n_new * hop :]
        if self.spec.deltas:
            prev = self.prev_raw
            self.prev_raw = raw[-1].copy()
            raw = D.add_deltas(raw, prev)
        feats = torch.from_numpy(self.normalizer(raw))  # (n_new, F)
        for t in range(feats.shape[0]):
            logits, self.state = self.model.step(feats[t : t + 1], self.state)
            self.logits = logits[0]
        self.frames += n_new
        return n_new

    def update(self) -> Update | None:
        """The running prediction (None before the first complete frame)."""
        if self.logits is None:
            return None
        p = torch.softmax(self.logits, -1).numpy()
        k = int(p.argmax())
        return Update(
            self.samples / self.spec.sample_rate,
            self.frames,
            self.model.config.labels[k],
            float(p[k]),
            p,
        )

    def finish(self) -> Update:
        """The final prediction; refuses a stream that was too short or silent."""
        if self.frames == 0:
            raise UserInputError(
                f"audio is too short: {self.samples / self.spec.sample_rate:.3f} s, need at least "
                f"{self.spec.min_samples / self.spec.sample_rate:.3f} s"
            )
        if self.peak < D.SILENCE_PEAK:
            raise UserInputError(
                f"audio is silent: peak amplitude {self.peak:.2e}, need at least "
                f"{D.SILENCE_PEAK:g} of full scale"
            )
        return self.update()  # type: ignore[return-value]


def simulate(
    model: DigitRecognizer,
    y: np.ndarray,
    chunk_s: float = 0.1,
    speed: float = 1.0,
    sleep: Callable[[float], None] | None = time.sleep,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[tuple[Update | None, bool]]:
    """Play ``y`` into a :class:`StreamingRecognizer` in chunks of ``chunk_s`` seconds, waiting as long as
    each chunk lasts divided by ``speed`` (``sleep=None``: no waiting; ``clock`` measures the time spent). Yields (update, is_final); the final
    update is :meth:`StreamingRecognizer.finish`."""
    if chunk_s <= 0:
        raise UserInputError(f"--chunk-ms must be positive, got {chunk_s * 1000:g}")
    if speed <= 0:
        raise UserInputError(f"--speed must be positive, got {speed:g}")
    rec = StreamingRecognizer(model)
    step = max(1, int(round(chunk_s * rec.spec.sample_rate)))
    start = clock()
    for i in range(0, len(y), step):
        if sleep is not None:  # real time: a chunk is complete when its last sample has arrived
            due = min(i + step, len(y)) / rec.spec.sample_rate / speed - (clock() - start)
            if due > 0:
                sleep(due)
        rec.push(y[i : i + step])
        yield rec.update(), False
    yield rec.finish(), True
