"""Predictions for new sentences, and word-level explanations by occlusion.

Explanation of a sentence: for each word, the model's log-odds of positive, log P(pos)/P(neg) (the logit
difference), for the sentence minus the same with that word replaced by ``<unk>`` (the model's "unknown
word"). A positive number means the word pushed the prediction towards positive. Log-odds, unlike
probabilities, do not saturate: in a sentence the model is sure about, each telling word still shows.
It needs T + 1 forward passes (one batch) and explains this model's own behaviour — no gradients or
attention heuristics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from .data import LABELS, UNK, tokenize
from .evaluate import predict_proba
from .model import SentimentGRU


@dataclasses.dataclass
class Prediction:
    text: str
    label: str
    p_positive: float
    words: list[str] | None = None
    contributions: list[float] | None = None  # per word, change in log-odds of positive (nats)
    known: list[bool] | None = None  # whether each word is in the vocabulary


def predict(model: SentimentGRU, texts: Sequence[str]) -> list[Prediction]:
    """Label and P(positive) for each text."""
    probs = predict_proba(model, texts).tolist()
    return [Prediction(t, LABELS[int(p > 0.5)], p) for t, p in zip(texts, probs)]


@torch.inference_mode()
def explain(model: SentimentGRU, text: str) -> Prediction:
    """:func:`predict` for one text plus each word's occlusion contribution (see the module docstring)."""
    words = tokenize(text)
    if not words:
        pred = predict(model, [text])[0]
        return dataclasses.replace(pred, words=[], contributions=[], known=[])
    ids = torch.tensor(model.encoder.encode(text), dtype=torch.long)  # (T,)
    T = ids.numel()
    batch = ids.repeat(T + 1, 1)  # row 0: the sentence; row i+1: word i replaced by <unk>
    batch[torch.arange(1, T + 1), torch.arange(T)] = model.encoder.index[UNK]
    was = model.training
    model.eval()
    try:
        logits = model(batch, torch.full((T + 1,), T, dtype=torch.long)).double()  # (T + 1, 2)
    finally:
        model.train(was)
    log_odds = logits[:, 1] - logits[:, 0]
    p = torch.sigmoid(log_odds)
    contrib = (log_odds[0] - log_odds[1:]).tolist()
    known = [model.encoder.index.get(w, 1) != 1 for w in words]
    return Prediction(text, LABELS[int(p[0] > 0.5)], float(p[0]), words, contrib, known)
