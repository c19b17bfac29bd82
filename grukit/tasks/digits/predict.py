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
) -> list[tuple[int, int]]:
    """Sample ranges of the spoken parts.

    A 32 ms frame (hop 8 ms) is speech when its RMS level is more than ``above_floor_db`` above the noise
    floor (:func:`noise_floor_db`) and at most ``top_db`` below the loudest frame; each speech run then
    grows over the neighbouring frames that are still ``extend_db`` above the floor (quiet onsets and
    endings: a final "t", an initial "f"). Runs closer than ``min_gap_s`` are merged, runs shorter than
    ``min_len_s`` dropped, and each run widened by up to ``pad_s`` on both sides (at most half the pause to
    its neighbour). Quiet and loud talkers in one recording are both found, since the threshold follows
    the noise floor rather than only the peak."""
    import librosa

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
    intervals = [(int(a) * hop, min(len(y), int(b) * hop)) for a, b in zip(edges[::2], edges[1::2])]
    merged: list[list[int]] = []
    for s, e in intervals:
        if merged and s - merged[-1][1] < min_gap_s * sample_rate:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    merged = [[s, e] for s, e in merged if e - s >= min_len_s * sample_rate]
    pad = int(pad_s * sample_rate)
    out = []
    for i, (s, e) in enumerate(merged):
        before = s if i == 0 else (s - merged[i - 1][1]) // 2
        after = len(y) - e if i == len(merged) - 1 else (merged[i + 1][0] - e) // 2
        out.append((s - min(pad, before), e + min(pad, after)))
    return out


#: ``predict_sequence`` classifies each spoken part cut as found and widened by 30 ms, and averages the
#: two answers (where a part's edges are lost in the noise, one of the two cuts is usually the better).
CROP_PADS_S = (0.0, 0.03)


def predict_sequence(
    model: DigitRecognizer, y: np.ndarray, top_db: float = 50.0, min_gap_s: float = 0.12
) -> list[Segment]:
    """A recording of several digits with pauses between them → one :class:`Segment` per spoken digit.

    Each part is classified as cut by :func:`split_on_pauses` and widened by each of
    :data:`CROP_PADS_S`; the class probabilities are averaged."""
    spec = model.feature_spec
    y = D.check_audio(y, spec)
    cuts = [
        split_on_pauses(y, spec.sample_rate, top_db=top_db, min_gap_s=min_gap_s, pad_s=pad)
        for pad in CROP_PADS_S
    ]  # the same parts each time (the padding never merges two), only their edges differ
    keep = [i for i, (s, e) in enumerate(cuts[-1]) if e - s >= spec.min_samples]
    if not keep:
        raise UserInputError("found no spoken part long enough to classify in the recording")
    labels = model.config.labels
    out = []
    for i in keep:
        probs = [
            classify(model, y[c[i][0] : c[i][1]])
            for c in cuts
            if c[i][1] - c[i][0] >= spec.min_samples
        ]
        p = np.mean(probs, axis=0)
        k = int(p.argmax())
        s, e = cuts[0][i]
        out.append(Segment(s / spec.sample_rate, e / spec.sample_rate, labels[k], float(p[k])))
    return out
