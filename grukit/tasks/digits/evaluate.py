"""Evaluation: accuracy (overall, per speaker, per digit) and the confusion matrix of a model on a split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import data as D
from .model import DigitRecognizer
from .predict import normalize


@torch.no_grad()
def predict_logits(
    model: DigitRecognizer, features: Sequence[np.ndarray], batch_size: int = 128
) -> np.ndarray:
    """Logits (N, n_classes) of normalized feature arrays, in input order."""
    model.eval()
    out = np.zeros((len(features), model.config.n_classes), dtype=np.float32)
    dl: DataLoader[int] = DataLoader(
        list(range(len(features))),  # type: ignore[arg-type]  # a list is a map-style dataset
        batch_sampler=D.BucketSampler([len(f) for f in features], batch_size, shuffle=False),
        collate_fn=lambda idx: idx,
    )
    for idx in dl:
        x = torch.nn.utils.rnn.pad_sequence(
            [torch.from_numpy(features[i]) for i in idx], batch_first=True
        )
        lengths = torch.tensor([len(features[i]) for i in idx])
        out[idx] = model(x, lengths).numpy()
    return out


def accuracy(logits: np.ndarray, labels: Sequence[int]) -> float:
    return float((logits.argmax(-1) == np.asarray(labels)).mean())


def split_records(data_dir, split: str, speaker: str | None = None) -> list[D.Recording]:
    """The recordings of ``split`` ("train", "val", "test" or "all") of the official split, or of a
    leave-one-speaker-out fold when ``speaker`` is given (its "test" = that speaker's files)."""
    from grukit.datasets import find_data_dir

    from ...errors import UserInputError

    recs = D.list_recordings(find_data_dir(D.DATASET, data_dir))
    if split == "all":
        return recs
    parts = D.speaker_split(recs, speaker) if speaker else D.official_split(recs)
    if split not in parts:
        raise UserInputError(f"--split must be one of train, val, test, all; got {split!r}")
    return parts[split]


def evaluate_records(model: DigitRecognizer, recs: Sequence[D.Recording]) -> dict:
    """{"accuracy", "n", "per_speaker", "per_digit", "confusion" (rows = true digit, cols = predicted)}."""
    spec = model.feature_spec
    feats = [normalize(model, x) for x in D.load_raw_features(recs, spec)]
    logits = predict_logits(model, feats)
    return summarize(logits, [r.digit for r in recs], [r.speaker for r in recs])


def summarize(logits: np.ndarray, labels: Sequence[int], speakers: Sequence[str]) -> dict:
    pred = logits.argmax(-1)
    labels_a = np.asarray(labels)
    speakers_a = np.asarray(speakers)
    n = logits.shape[1]
    conf = np.zeros((n, n), dtype=int)
    np.add.at(conf, (labels_a, pred), 1)
    return {
        "accuracy": accuracy(logits, labels),
        "n": int(len(labels_a)),
        "per_speaker": {
            s: float((pred[speakers_a == s] == labels_a[speakers_a == s]).mean())
            for s in sorted(set(speakers_a.tolist()))
        },
        "per_digit": {
            str(d): float((pred[labels_a == d] == d).mean())
            for d in range(n)
            if (labels_a == d).any()
        },
        "confusion": conf.tolist(),
    }
