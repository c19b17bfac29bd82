"""FSDD data and features: reading audio, log-mel features that can be computed causally, normalization,
the official split (index 0-4 test, 5-49 train) and leave-one-speaker-out folds.

Features (all frame-local, so a stream gives the same frames as the whole file):
    audio → mono mix-down → resample to ``sample_rate`` (8 kHz for FSDD) →
    ``librosa.stft(center=False)`` (frame t covers samples [t·hop, t·hop + n_fft), no look-ahead) →
    power → mel filterbank → ``log(· + 1e-6)`` → optional causal delta (x_t − x_{t−1}, 0 at t = 0).

Normalization (per utterance, two flavours; the model's config says which):
    ``"utterance"``  mean and std over the whole utterance, per feature (needs the whole file: offline model)
    ``"running"``    causal: at frame t, mean and variance of frames 0..t blended with a prior (the training
                     set's mean/variance, weighted as ``prior_frames`` frames). Frame t depends on frames ≤ t
                     only, so streaming and offline features agree (both use :func:`running_normalize` /
                     :class:`RunningNormalizer`, the same float64 sums in the same order).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from ...errors import UserInputError

DATASET = "fsdd"
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
N_CLASSES = 10
_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
LOG_EPS = 1e-6
NORM_EPS = 1e-5
#: A recording whose peak amplitude is below this (of full scale 1.0) is refused as silent.
SILENCE_PEAK = 1e-3


@dataclass(frozen=True)
class Recording:
    """One FSDD file: ``{digit}_{speaker}_{index}.wav``."""

    path: Path
    digit: int
    speaker: str
    index: int


@dataclass(frozen=True)
class FeatureSpec:
    """How audio becomes feature frames (a subset of the model's config)."""

    sample_rate: int = 8000
    n_fft: int = 256
    hop_length: int = 80
    n_mels: int = 40
    deltas: bool = True

    @property
    def n_features(self) -> int:
        return self.n_mels * (2 if self.deltas else 1)

    @property
    def min_samples(self) -> int:
        """Shortest audio that yields one frame."""
        return self.n_fft


# ------------------------------------------------------------------------------------------ files & splits
def list_recordings(data_dir: str | os.PathLike) -> list[Recording]:
    """Every ``recordings/{digit}_{speaker}_{index}.wav`` under the FSDD folder, sorted by name."""
    root = Path(data_dir)
    rec_dir = root / "recordings" if (root / "recordings").is_dir() else root
    out = []
    for p in sorted(rec_dir.glob("*.wav")):
        m = _NAME.match(p.name)
        if m:
            out.append(Recording(p, int(m.group(1)), m.group(2), int(m.group(3))))
    if not out:
        raise UserInputError(
            f"no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav) found in {rec_dir}"
        )
    return out


def official_split(
    recs: Sequence[Recording], val_indices: range = range(5, 10)
) -> dict[str, list[Recording]]:
    """The official split (index 0-4 test, 5-49 train), with validation taken from train by index
    (``val_indices``, default 5-9): {"train": 10-49, "val": 5-9, "test": 0-4}."""
    split: dict[str, list[Recording]] = {"train": [], "val": [], "test": []}
    for r in recs:
        key = "test" if r.index <= 4 else "val" if r.index in val_indices else "train"
        split[key].append(r)
    return split


def speaker_split(
    recs: Sequence[Recording], speaker: str, val_indices: range = range(5, 10)
) -> dict[str, list[Recording]]:
    """Leave-one-speaker-out: test = every file of ``speaker``; val = the other speakers' files with index in
    ``val_indices``; train = the rest of the other speakers' files."""
    if speaker not in {r.speaker for r in recs}:
        raise UserInputError(
            f"unknown speaker {speaker!r}; expected one of {sorted({r.speaker for r in recs})}"
        )
    split: dict[str, list[Recording]] = {"train": [], "val": [], "test": []}
    for r in recs:
        key = "test" if r.speaker == speaker else "val" if r.index in val_indices else "train"
        split[key].append(r)
    return split


# ---------------------------------------------------------------------------------------------- audio
def read_audio(path: str | os.PathLike, sample_rate: int = 8000) -> np.ndarray:
    """Audio file → float32 mono samples (T,) at ``sample_rate`` (channels averaged, resampled if needed).

    Raises UserInputError for a missing or unreadable file. Does not check length or silence (see
    :func:`check_audio`)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"audio file not found: {path}")
    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserInputError(f"cannot read audio file {path}: {msg}") from None
    y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    if y.size and sr != sample_rate:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=sample_rate)
    return np.ascontiguousarray(y, dtype=np.float32)


def check_audio(y: np.ndarray, spec: FeatureSpec, name: str = "audio") -> np.ndarray:
    """Refuse audio that cannot be recognized: empty, non-finite, shorter than one frame, or silent."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise UserInputError(f"{name}: expected mono samples of shape (T,), got shape {y.shape}")
    if y.size == 0:
        raise UserInputError(f"{name} is empty (0 samples)")
    if not np.isfinite(y).all():
        raise UserInputError(f"{name} contains NaN or infinite samples")
    if y.size < spec.min_samples:
        raise UserInputError(
            f"{name} is too short: {y.size / spec.sample_rate:.3f} s, need at least "
            f"{spec.min_samples / spec.sample_rate:.3f} s ({spec.min_samples} samples at "
            f"{spec.sample_rate} Hz)"
        )
    peak = float(np.abs(y).max())
    if peak < SILENCE_PEAK:
        raise UserInputError(
            f"{name} is silent: peak amplitude {peak:.2e}, need at least {SILENCE_PEAK:g} "
            f"of full scale"
        )
    return y


def load_audio(path: str | os.PathLike, spec: FeatureSpec) -> np.ndarray:
    """:func:`read_audio` + :func:`check_audio`."""
    return check_audio(read_audio(path, spec.sample_rate), spec, name=str(path))


# ------------------------------------------------------------------------------------------- features
_MEL_CACHE: dict[tuple, np.ndarray] = {}


def mel_basis(spec: FeatureSpec) -> np.ndarray:
    """(n_mels, n_fft//2 + 1) mel filterbank from librosa (Slaney mel scale, 0 Hz to Nyquist)."""
    key = (spec.sample_rate, spec.n_fft, spec.n_mels)
    if key not in _MEL_CACHE:
        import librosa

        _MEL_CACHE[key] = librosa.filters.mel(
            sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels
        )
    return _MEL_CACHE[key]


def log_mel(y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Samples (N,) → log-mel frames (T, n_mels), T = 1 + (N − n_fft) // hop (0 if N < n_fft).

    Frames are not centred (``center=False``): frame t sees samples [t·hop, t·hop + n_fft) only, so any
    prefix of the audio gives exactly the leading frames of the whole."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.size < spec.n_fft:
        return np.zeros((0, spec.n_mels), dtype=np.float32)
    stft = librosa.stft(
        y, n_fft=spec.n_fft, hop_length=spec.hop_length, window="hann", center=False
    )
    power = np.abs(stft) ** 2  # (n_fft//2+1, T)
    mel = mel_basis(spec) @ power  # (n_mels, T)
    return np.log(mel + LOG_EPS).T.astype(np.float32)  # (T, n_mels)


def add_deltas(frames: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """(T, M) → (T, 2M): the frames and their causal first difference x_t − x_{t−1} (``previous`` is the
    frame before this block when streaming; 0 difference at the very first frame)."""
    prev = frames[:1] if previous is None else previous[None, :]
    shifted = np.concatenate([prev, frames[:-1]], axis=0) if len(frames) else frames
    return np.concatenate([frames, frames - shifted], axis=1).astype(np.float32)


def raw_features(y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Samples → un-normalized features (T, n_features)."""
    f = log_mel(y, spec)
    return add_deltas(f) if spec.deltas else f


def utterance_normalize(x: np.ndarray) -> np.ndarray:
    """(T, F) → zero mean, unit variance per feature over the utterance (non-causal)."""
    x64 = x.astype(np.float64)
    return ((x64 - x64.mean(0)) / np.sqrt(x64.var(0) + NORM_EPS)).astype(np.float32)


class RunningNormalizer:
    """Causal normalization, fed frame blocks as they arrive: frame t is normalized with

        m_t = (P·μ₀ + Σ_{s≤t} x_s) / (P + t + 1),   v_t = (P·(σ₀² + μ₀²) + Σ_{s≤t} x_s²) / (P + t + 1) − m_t²,
        x̂_t = (x_t − m_t) / √(v_t + eps)

    with the prior (μ₀, σ₀²) = the training set's per-feature mean and variance weighted as P frames."""

    def __init__(
        self, mean: Sequence[float] | None, var: Sequence[float] | None, prior_frames: float
    ) -> None:
        self.mean0 = np.asarray(mean, dtype=np.float64)
        self.var0 = np.asarray(var, dtype=np.float64)
        if self.mean0.shape != self.var0.shape or self.mean0.ndim != 1:
            raise ValueError(
                f"mean and var must be 1-D of the same length, got {self.mean0.shape} and "
                f"{self.var0.shape}"
            )
        self.prior = float(prior_frames)
        self.count = self.prior
        self.sum = self.prior * self.mean0
        self.sumsq = self.prior * (self.var0 + self.mean0**2)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(T, F) frames following those already seen → (T, F) normalized frames."""
        x64 = np.asarray(x, dtype=np.float64)
        if x64.ndim != 2 or x64.shape[1] != self.mean0.size:
            raise ValueError(f"expected frames of shape (T, {self.mean0.size}), got {x64.shape}")
        out = np.empty_like(x64)
        for t in range(
            x64.shape[0]
        ):  # sequential sums: the same arithmetic whatever the block sizes
            self.count += 1.0
            self.sum = self.sum + x64[t]
            self.sumsq = self.sumsq + x64[t] ** 2
            m = self.sum / self.count
            v = np.maximum(self.sumsq / self.count - m**2, 0.0)
            out[t] = (x64[t] - m) / np.sqrt(v + NORM_EPS)
        return out.astype(np.float32)


def running_normalize(
    x: np.ndarray, mean: Sequence[float] | None, var: Sequence[float] | None, prior_frames: float
) -> np.ndarray:
    """(T, F) → causally normalized (T, F) (see :class:`RunningNormalizer`)."""
    return RunningNormalizer(mean, var, prior_frames)(x)


def feature_stats(frames: Sequence[np.ndarray]) -> tuple[list[float], list[float]]:
    """Per-feature mean and variance over all frames of all utterances (float64 sums)."""
    x = np.concatenate([f.astype(np.float64) for f in frames], axis=0)
    return x.mean(0).tolist(), x.var(0).tolist()


def load_raw_features(recs: Sequence[Recording], spec: FeatureSpec) -> list[np.ndarray]:
    """Un-normalized features of each recording (each checked as :func:`load_audio` does)."""
    return [raw_features(load_audio(r.path, spec), spec) for r in recs]


# ---------------------------------------------------------------- batching (training and inference)
def collate(batch: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor, Tensor]:
    """→ x (B, T_max, F) zero-padded, lengths (B,), y (B,)."""
    xs, ys = zip(*batch)
    lengths = torch.tensor([len(x) for x in xs], dtype=torch.long)
    x = torch.nn.utils.rnn.pad_sequence(list(xs), batch_first=True)
    return x, lengths, torch.tensor(ys, dtype=torch.long)


class BucketSampler(Sampler[list[int]]):
    """Batches of similar length (less padding): shuffle (torch's global RNG, so the toolkit's per-epoch
    seeding makes it reproducible), sort each pool of ``pool`` batches by length, cut into batches, shuffle
    the batches. ``shuffle=False`` gives length-sorted batches in a fixed order. Lazy like RandomSampler: the
    order is drawn at the first batch, after the toolkit has re-seeded the epoch (exact resume)."""

    def __init__(
        self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, pool: int = 8
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size, self.shuffle, self.pool = int(batch_size), shuffle, int(pool)

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n, bs = len(self.lengths), self.batch_size
        order = torch.randperm(n).tolist() if self.shuffle else list(range(n))
        span = bs * self.pool if self.shuffle else n
        batches = []
        for s in range(0, n, span):
            chunk = sorted(order[s : s + span], key=lambda i: self.lengths[i])
            batches += [chunk[i : i + bs] for i in range(0, len(chunk), bs)]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches)).tolist()]
        yield from batches
