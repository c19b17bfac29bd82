"""Predictions for new sentences, and word-level explanations by occlusion.

Explanation of a sentence: for each word, the model's log-odds of positive, log P(pos)/P(neg) (the logit
difference), for the sentence minus the same with that word replaced by ``<unk>`` (the model's "unknown
word"). A positive number means the word pushed the prediction towards positive. Log-odds, unlike
probabilities, do not saturate: in a sentence the model is sure about, each telling word still shows.
It needs T + 1 forward passes and explains this model's own behaviour — no gradients or attention
heuristics.

Memory: the T + 1 passes run in chunks of at most ``max(1, TOKENS_PER_CHUNK // T)`` sequences, so the
peak memory is bounded whatever the length (a single batch of all of them needs memory quadratic in T:
12 GB at 2,000 words). Time still grows as T², so ``explain`` refuses sentences longer than
``max_words`` (default :data:`MAX_EXPLAIN_WORDS`) unless told otherwise.

Every prediction reports how many of its words the model knows (words outside the training vocabulary
all read as ``<unk>``); empty or whitespace-only text is refused, since there is nothing to classify.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence

import torch

from ...errors import UserInputError
from .data import LABELS, UNK, tokenize
from .evaluate import predict_proba
from .model import SentimentGRU

#: Sequence positions (words × sequences) per occlusion chunk: ~40 MB of activations for the shipped model
#: (measured ~5 KB per position; smaller chunks were no slower on one CPU thread).
TOKENS_PER_CHUNK = 8_192
#: Longest sentence ``explain`` accepts by default (its time grows as the square of the length).
MAX_EXPLAIN_WORDS = 2_000


@dataclasses.dataclass
class Prediction:
    """One sentence's answer. ``known`` counts the words in the model's vocabulary (out of ``n_words``);
    ``unknown_words`` lists the others. ``contributions`` (per word, the change in log-odds of positive in
    nats when it is replaced by ``<unk>``) is filled by :func:`explain` only."""

    text: str
    label: str
    p_positive: float
    n_words: int
    known: int
    unknown_words: list[str]
    words: list[str] | None = None
    contributions: list[float] | None = None


def _vocab_report(model: SentimentGRU, text: str) -> tuple[list[str], int, list[str]]:
    words = tokenize(text)
    unknown = [w for w in words if w not in model.encoder.index or w == UNK]
    return words, len(words) - len(unknown), unknown


def check_texts(texts: Sequence[str]) -> None:
    """Refuse an empty list or any empty / whitespace-only text (naming which)."""
    if not texts:
        raise UserInputError("no sentences given; expected at least one")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise UserInputError(f"sentence {i + 1} is a {type(t).__name__}, expected a string")
        if not tokenize(t):
            where = "the sentence" if len(texts) == 1 else f"sentence {i + 1}"
            raise UserInputError(
                f"{where} is empty (or only whitespace); expected text to classify"
            )


def predict(model: SentimentGRU, texts: Sequence[str]) -> list[Prediction]:
    """Label, P(positive) and the known-word count for each text; refuses empty texts.

    Example:
        >>> from grukit.tasks.sentiment.model import SentimentGRU
        >>> m = SentimentGRU(["<pad>", "<unk>", "good"], embed_dim=4, hidden_size=3)
        >>> p = predict(m, ["good film"])[0]
        >>> (p.n_words, p.known, p.unknown_words)
        (2, 1, ['film'])
    """
    texts = list(texts)
    check_texts(texts)
    probs = predict_proba(model, texts).tolist()
    out = []
    for t, p in zip(texts, probs):
        words, known, unknown = _vocab_report(model, t)
        out.append(Prediction(t, LABELS[int(p > 0.5)], p, len(words), known, unknown))
    return out


def occlusion_log_odds(model: SentimentGRU, ids: torch.Tensor) -> Iterator[list[float]]:
    """Log-odds of positive (computed in float64) for the sentence ``ids`` (T,) and for each one-word occlusion, in
    chunks: the first chunk starts with the sentence itself (row 0), then row i + 1 has word i replaced by
    ``<unk>``. Each chunk holds at most ``max(1, TOKENS_PER_CHUNK // T)`` sequences."""
    T = ids.numel()
    unk = model.encoder.index[UNK]
    rows = max(1, TOKENS_PER_CHUNK // T)
    for start in range(0, T + 1, rows):
        stop = min(start + rows, T + 1)
        batch = ids.repeat(stop - start, 1)  # (n, T): sequence r = start + j occludes word r - 1
        r = torch.arange(start, stop)
        occluded = r >= 1
        batch[torch.nonzero(occluded)[:, 0], r[occluded] - 1] = unk
        with torch.inference_mode():  # no autograd graph: nothing of a chunk outlives it
            logits = model(batch, torch.full((stop - start,), T, dtype=torch.long)).double()
            # Python floats, not a tensor: small tensors kept across chunks pin the C heap between the
            # chunks' large buffers, and the process then grows with the number of chunks
            log_odds = (logits[:, 1] - logits[:, 0]).tolist()
        del logits, batch
        yield log_odds


def explain(
    model: SentimentGRU, text: str, max_words: int | None = MAX_EXPLAIN_WORDS
) -> Prediction:
    """:func:`predict` for one text plus each word's occlusion contribution (see the module docstring).

    Refuses empty text and, unless ``max_words`` is None, texts longer than ``max_words`` words."""
    check_texts([text])
    words, known, unknown = _vocab_report(model, text)
    if max_words is not None and len(words) > max_words:
        raise UserInputError(
            f"--explain takes sentences of at most {max_words} words (its time grows as the square of "
            f"the length), got {len(words)}; split the text, or predict without --explain"
        )
    ids = torch.tensor(model.encoder.encode(text), dtype=torch.long)  # (T,)
    was = model.training
    model.eval()
    try:
        log_odds = [v for chunk in occlusion_log_odds(model, ids) for v in chunk]  # T + 1 values
    finally:
        model.train(was)
    z = log_odds[0]
    p = (
        1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    )  # σ(z), no overflow
    contrib = [log_odds[0] - v for v in log_odds[1:]]
    return Prediction(text, LABELS[int(p > 0.5)], p, len(words), known, unknown, words, contrib)


__all__ = [
    "MAX_EXPLAIN_WORDS",
    "TOKENS_PER_CHUNK",
    "Prediction",
    "check_texts",
    "explain",
    "occlusion_log_odds",
    "predict",
]
