"""Prediction: load a model (``--checkpoint`` or the shipped one), featurize audio as its config says,
classify one utterance, or split a recording of several digits at its pauses and classify each part.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import UserInputError
from . import data as D
from .model import DigitRecognizer

PRETRAINED = Path(__file__).resolve().parents[2] / "pretrained"
OFFLINE_MODEL = PRETRAINED / "digits-fsdd.safetensors"
STREAM_MODEL = PRETRAINED / "digits-fsdd-stream.safetensors"


def load_model(
    checkpoint: str | os.PathLike | None = None, stream: bool = False
) -> DigitRecognizer:
    """``--checkpoint`` (run folder or .safetensors) or, without it, the shipped offline model
    (``stream=False``) or streaming model (``stream=True``)."""
    from grukit.train.run import load_task_model

    shipped = STREAM_MODEL if stream else OFFLINE_MODEL
    model, path = load_task_model(checkpoint, shipped, DigitRecognizer, "digits")
    if stream and not model.streamable:
        raise UserInputError(
            f"{path} is not a streaming model (it needs a unidirectional GRU and running "
            f"normalization; got bidirectional={model.config.bidirectional}, "
            f"normalization={model.config.normalization!r}); use the shipped "
            f"{STREAM_MODEL.name} or train one with --unidirectional"
        )
    return model.eval()


def normalize(model: DigitRecognizer, raw: np.ndarray) -> np.ndarray:
    """Raw features (T, F) → normalized as the model was trained."""
    c = model.config
    if c.normalization == "utterance":
        return D.utterance_normalize(raw)
    return D.running_normalize(raw, c.feature_mean, c.feature_var, c.prior_frames)


def features_for(model: DigitRecognizer, y: np.ndarray) -> np.ndarray:
    """Checked mono samples at the model's rate → normalized features (T, F)."""
    return normalize(model, D.raw_features(y, model.feature_spec))


@torch.no_grad()
def classify(model: DigitRecognizer, y: np.ndarray) -> np.ndarray:
    """One utterance (samples at the model's rate) → class probabilities (n_classes,)."""
    spec = model.feature_spec
    y = D.check_audio(y, spec)
    x = torch.from_numpy(features_for(model, y))[None]
    return torch.softmax(model(x), -1)[0].numpy()


def classify_file(model: DigitRecognizer, path: str | os.PathLike) -> np.ndarray:
    """Audio file → class probabilities (n_classes,); refuses unreadable, empty, too short or silent audio."""
    return classify(model, D.load_audio(path, model.feature_spec))


@dataclass
class Segment:
    """One spoken part of a longer recording and its prediction."""

    start_s: float
    end_s: float
    label: str
    prob: float


def noise_floor_db(db: np.ndarray) -> float:
    """The level (dB) of the background between spoken parts: the most common level, in 1 dB bins, among
    the quieter half of the frames.

    Pauses are long stretches of nearly constant level, so they form the sharpest peak of the level
    histogram below the median; a low percentile instead lands on whatever is quietest (a recording's own
    near-silent lead-in), under the pauses, and lets the pauses pass for speech."""
    low = db[db <= np.median(db)]
    lo, hi = np.floor(low.min()), np.ceil(low.max()) + 1.0
    counts, edges = np.histogram(low, bins=np.arange(lo, hi + 1.0, 1.0))
    k = int(np.argmax(counts))
    return float(0.5 * (edges[k] + edges[k + 1]))


def split_on_pauses(
    y: np.ndarray,
    sample_rate: int,
    top_db: float = 50.0,
    min_gap_s: float = 0.12,
    pad_s: float = 0.0,
    min_len_s: float = 0.06,
    above_floor_db: float = 6.0,
    extend_db: float = 3.0,
    white_flatness: float = 0.45,
    max_extend_s: float = 0.5,
) -> list[tuple[int, int]]:
    """Sample ranges of the spoken parts.

    A 32 ms frame (hop 8 ms) is speech when its RMS level is more than ``above_floor_db`` above the noise
    floor (:func:`noise_floor_db`) and at most ``top_db`` below the loudest frame; each speech run then
    grows over the neighbouring frames that are still ``extend_db`` above the floor (quiet onsets and
    endings: a final "t", an initial "f"). Runs closer than ``min_gap_s`` are merged and runs shorter than
    ``min_len_s`` dropped. Quiet and loud talkers in one recording are both found, since the threshold
    follows the noise floor rather than only the peak.

    Where the pauses are as loud as a digit's quiet edges, the level cannot tell them apart, but the
    spectrum can: white noise has a flat spectrum (spectral flatness, the geometric over the arithmetic
    mean of the power spectrum, near 0.56 for Gaussian noise) while speech and a microphone's own
    background are coloured (mostly below 0.3). So each part then grows, by at most ``max_extend_s`` and
    never past the middle of the pause to its neighbour, over frames whose flatness (median of 5 frames)
    is below ``white_flatness``; parts that now lie closer than ``min_gap_s`` are merged. This step is
    skipped when the pauses themselves (the frames within ``extend_db`` of the floor) are coloured
    (median flatness below ``white_flatness``): it could not tell them from speech. Finally each
    part is widened by up to ``pad_s`` on both sides (at most half the pause to its neighbour).

    Args:
        y: Mono samples, shape (n,).
        sample_rate: Samples per second of ``y``.

    Returns:
        ``(start, end)`` sample indices, in order and not overlapping.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> t = np.arange(8000) / 8000
        >>> tone = 0.1 * np.sin(2 * np.pi * 440 * t[:2400])
        >>> gap = 3e-3 * rng.standard_normal(2400)
        >>> y = np.concatenate([gap, tone, gap, tone, gap]).astype(np.float32)
        >>> len(split_on_pauses(y, 8000))
        2
    """
    import librosa
    from scipy.ndimage import median_filter

    frame, hop = 256, 64
    rms = librosa.feature.rms(y=y, frame_length=frame, hop_length=hop, center=True)[0]
    db = 20 * np.log10(rms + 1e-10)
    floor = noise_floor_db(db)
    lowest = db.max() - top_db
    speech = db > max(floor + above_floor_db, lowest)
    near = db > max(floor + extend_db, lowest)
    while True:  # grow the speech runs into adjacent frames that are near-speech
        grow = near & ~speech & (np.r_[False, speech[:-1]] | np.r_[speech[1:], False])
        if not grow.any():
            break
        speech |= grow
    edges = np.flatnonzero(np.diff(np.concatenate([[0], speech.astype(np.int8), [0]])))
    gap = min_gap_s * sample_rate / hop  # in frames
    runs = _merge_close([(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])], gap)
    runs = [(a, b) for a, b in runs if (b - a) * hop >= min_len_s * sample_rate]
    flatness = median_filter(
        librosa.feature.spectral_flatness(y=y, n_fft=frame, hop_length=hop, center=True)[0],
        5,
        mode="nearest",
    )
    coloured = flatness < white_flatness
    at_floor = np.abs(db - floor) < extend_db  # the pauses' frames
    if not at_floor.any() or np.median(flatness[at_floor]) < white_flatness:
        coloured[:] = False  # the pauses are coloured themselves (hum, traffic): level only
    reach = int(max_extend_s * sample_rate / hop)
    grown = []
    for i, (a, b) in enumerate(runs):
        left = max(a - reach, 0 if i == 0 else (runs[i - 1][1] + a) // 2)
        right = min(b + reach, len(db) if i == len(runs) - 1 else (b + runs[i + 1][0]) // 2)
        while a > left and coloured[a - 1]:
            a -= 1
        while b < right and coloured[b]:
            b += 1
        grown.append((a, b))
    parts = [(a * hop, min(len(y), b * hop)) for a, b in _merge_close(grown, gap)]
    pad = int(pad_s * sample_rate)
    out = []
    for i, (s, e) in enumerate(parts):
        before = s if i == 0 else (s - parts[i - 1][1]) // 2
        after = len(y) - e if i == len(parts) - 1 else (parts[i + 1][0] - e) // 2
        out.append((s - min(pad, before), e + min(pad, after)))
    return out


def _merge_close(runs: list[tuple[int, int]], gap: float) -> list[tuple[int, int]]:
    """Ordered ``(start, end)`` runs → the same with runs less than ``gap`` apart joined."""
    merged: list[tuple[int, int]] = []
    for s, e in runs:
        if merged and s - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def predict_sequence(
    model: DigitRecognizer, y: np.ndarray, top_db: float = 50.0, min_gap_s: float = 0.12
) -> list[Segment]:
    """A recording of several digits with pauses between them → one :class:`Segment` per spoken digit.

    Each part is classified exactly as :func:`split_on_pauses` cuts it, with no padding: the models were
    trained on recordings trimmed to the spoken digit, and 30 ms of pause noise around a part already
    costs about a tenth of the 4-digit strings."""
    spec = model.feature_spec
    y = D.check_audio(y, spec)
    cuts = split_on_pauses(y, spec.sample_rate, top_db=top_db, min_gap_s=min_gap_s)
    cuts = [(s, e) for s, e in cuts if e - s >= spec.min_samples]
    if not cuts:
        raise UserInputError("found no spoken part long enough to classify in the recording")
    labels = model.config.labels
    out = []
    for s, e in cuts:
        p = classify(model, y[s:e])
        k = int(p.argmax())
        out.append(Segment(s / spec.sample_rate, e / spec.sample_rate, labels[k], float(p[k])))
    return out
