"""Scoring a text: mean negative log-likelihood per character (nats), bits per character, perplexity."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .data import stream_layout
from .model import CharLM


@torch.inference_mode()
def score_ids(
    model: CharLM,
    ids: Tensor,
    streams: int = 1,
    chunk: int = 1024,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Score ids (N,) with ``model`` in eval mode.

    The ids are cut into ``streams`` contiguous pieces (the last ``N mod streams`` ids dropped) read in
    parallel, each from a zero state with the state carried across chunks of ``chunk`` characters; every id
    of a piece except its first is predicted from everything before it in that piece. ``streams=1`` scores
    ids[1:] given the whole prefix (the exact number; more streams are faster and differ slightly).
    Each chunk is one call of the GRU on the whole (S, chunk) block (the fused sequence path), not a loop
    over characters. ``progress(n)``, if given, is called after each chunk with the characters it scored.

    Returns ``{"nats_per_char", "bits_per_char", "perplexity", "chars"}``.
    """
    if ids.dim() != 1 or ids.numel() < streams + 1:
        raise ValueError(
            f"score_ids expected at least {streams + 1} ids in a 1-D tensor, got shape {tuple(ids.shape)}"
        )
    was_training = model.training
    model.eval()
    try:
        data = stream_layout(ids, streams)  # (S, n)
        total, count, h = 0.0, 0, None
        n = data.shape[1]
        for start in range(0, n - 1, chunk):
            stop = min(start + chunk, n - 1)
            x, y = data[:, start:stop], data[:, start + 1 : stop + 1]
            logits, h = model(x, h)
            total += float(
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]).double(), y.reshape(-1), reduction="sum"
                )
            )
            count += y.numel()
            if progress is not None:
                progress(y.numel())
    finally:
        model.train(was_training)
    nats = total / count
    return {
        "nats_per_char": nats,
        "bits_per_char": nats / math.log(2),
        "perplexity": math.exp(nats),
        "chars": count,
    }


def score_text(
    model: CharLM,
    text: str,
    streams: int = 1,
    chunk: int = 1024,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """:func:`score_ids` of ``text`` encoded with the model's vocabulary (unknown characters are refused)."""
    return score_ids(
        model, model.vocab.encode(text), streams=streams, chunk=chunk, progress=progress
    )


def unigram_nats(train_ids: Tensor, eval_ids: Tensor, vocab_size: int) -> float:
    """Baseline: nats/char of ``eval_ids[1:]`` under the add-one-smoothed character frequencies of training."""
    counts = torch.bincount(train_ids, minlength=vocab_size).double() + 1.0
    logp = torch.log(counts / counts.sum())
    return float(-logp[eval_ids[1:]].mean())


PRETRAINED = Path(__file__).resolve().parents[2] / "pretrained" / "text-shakespeare.safetensors"


def load_model(checkpoint=None) -> tuple[CharLM, str]:
    """(model, path): ``--checkpoint`` (a run folder or a .safetensors file) or the shipped model."""
    from ...train.run import load_task_model

    model, path = load_task_model(checkpoint, PRETRAINED, CharLM, "text")
    return model, str(path)
