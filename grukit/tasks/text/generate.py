"""Streaming generation: the prompt runs through the GRU once, then each new character is one ``step``
from the carried state — nothing before it is recomputed. Reproducible for a fixed seed."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ...errors import UserInputError
from .model import CharLM


def _next_id(logits: Tensor, temperature: float, top_k: int | None, gen: torch.Generator) -> Tensor:
    """logits (1, V) → the sampled id (1,). temperature 0 = greedy (argmax)."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.double() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=gen)[:, 0]


@torch.inference_mode()
def sample_ids(
    model: CharLM,
    prompt: str,
    length: int,
    temperature: float = 0.8,
    top_k: int | None = None,
    seed: int = 0,
) -> Iterator[tuple[int, Tensor]]:
    """Yield ``length`` sampled ids one at a time, each with the logits (V,) it was drawn from."""
    if not prompt:
        raise UserInputError("the prompt must have at least one character (e.g. a newline)")
    if length < 0:
        raise UserInputError(f"length must be non-negative, got {length}")
    if temperature < 0:
        raise UserInputError(f"temperature must be ≥ 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise UserInputError(f"top-k must be at least 1, got {top_k}")
    ids = model.vocab.encode(prompt)  # refuses unknown characters
    was_training = model.training
    model.eval()
    try:
        gen = torch.Generator().manual_seed(int(seed))
        logits, h = model(ids[None], None)  # the prompt, once: (1, P, V), (L, 1, H)
        logits = logits[:, -1]
        for _ in range(length):
            nxt = _next_id(logits, temperature, top_k, gen)  # (1,)
            yield int(nxt), logits[0]
            logits, h = model.step(nxt, h)  # one character from the carried state
    finally:
        model.train(was_training)


def generate(
    model: CharLM,
    prompt: str = "\n",
    length: int = 500,
    temperature: float = 0.8,
    top_k: int | None = None,
    seed: int = 0,
) -> Iterator[str]:
    """Yield ``length`` characters as they are produced (see :func:`sample_ids`)."""
    for i, _ in sample_ids(model, prompt, length, temperature, top_k, seed):
        yield model.vocab.chars[i]
