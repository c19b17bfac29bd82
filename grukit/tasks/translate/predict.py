"""Loading a translation model file and translating text (used by ``predict`` and ``evaluate``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ...errors import UserInputError
from . import data as D
from .decode import beam_search, greedy
from .model import Translator

SHIPPED = Path(__file__).resolve().parents[2] / "pretrained" / "translate-eng-fra.safetensors"
#: Longest input accepted, in source subword tokens (the model was trained on ≤ 32; longer is refused).
MAX_INPUT_TOKENS = 128


@dataclass
class Bundle:
    """A model with its two tokenizers."""

    model: Translator
    src_tok: D.SubwordTokenizer
    tgt_tok: D.SubwordTokenizer
    path: Path | None = None


def load_bundle(checkpoint: str | os.PathLike | None = None) -> Bundle:
    """The model at ``checkpoint`` (a run folder or a .safetensors file), or the shipped model."""
    from ...train.run import load_task_model

    model, path, header = load_task_model(
        checkpoint, SHIPPED, Translator, "translate", return_header=True
    )
    src_tok, tgt_tok = D.tokenizers_from_extra(header.get("extra"), where=str(path))
    return Bundle(model.float().eval(), src_tok, tgt_tok, path)


def check_sentences(
    sentences: Sequence[str], src_tok: D.SubwordTokenizer, where: str = "input"
) -> list[list[int]]:
    """Token ids of each sentence; UserInputError for an empty or over-long one (naming it)."""
    ids = src_tok.encode_batch(list(sentences))
    for i, (_s, t) in enumerate(zip(sentences, ids)):
        label = f"{where} line {i + 1}" if len(sentences) > 1 else where
        if not t:
            raise UserInputError(f"{label} is empty; expected an English sentence")
        if len(t) > MAX_INPUT_TOKENS:
            raise UserInputError(
                f"{label} is too long: {len(t)} subword tokens, at most {MAX_INPUT_TOKENS} "
                f"(split it into sentences)"
            )
    return ids


def translate_ids(
    model: Translator,
    ids: Sequence[Sequence[int]],
    beam_size: int = 5,
    length_penalty: float = 1.0,
    batch_size: int = 64,
    return_attention: bool = False,
    progress: Callable[[int], None] | None = None,
):
    """Translate tokenized sentences in length-sorted batches → (token lists, attention list or None).

    ``progress(n)``, if given, is called after each batch with the number of sentences it held."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    tokens: list[list[int] | None] = [None] * len(ids)
    attns: list[Tensor | None] | None = [None] * len(ids) if return_attention else None
    for k in range(0, len(order), batch_size):
        idx = order[k : k + batch_size]
        src, src_len = D.pad_batch([torch.tensor(ids[i], dtype=torch.long) for i in idx])
        if beam_size == 1:
            out = greedy(model, src, src_len, return_attention=return_attention)
        else:
            out = beam_search(
                model,
                src,
                src_len,
                beam_size=beam_size,
                length_penalty=length_penalty,
                return_attention=return_attention,
            )
        for j, i in enumerate(idx):
            tokens[i] = out.tokens[j]
            if attns is not None and out.attention is not None:
                attns[i] = out.attention[j]
        if progress is not None:
            progress(len(idx))
    return tokens, attns


def translate(
    bundle: Bundle,
    sentences: Sequence[str],
    beam_size: int = 5,
    length_penalty: float = 1.0,
    batch_size: int = 64,
    return_attention: bool = False,
):
    """English sentences → French strings (and, on request, per-sentence attention (T_out, S) tensors)."""
    ids = check_sentences(sentences, bundle.src_tok)
    tokens, attns = translate_ids(
        bundle.model, ids, beam_size, length_penalty, batch_size, return_attention
    )
    out = [bundle.tgt_tok.decode(t) for t in tokens]
    return (out, attns) if return_attention else out


def plot_attention(
    bundle: Bundle,
    sentence: str,
    attention: Tensor,
    translation_ids: Sequence[int],
    path: str | os.PathLike,
) -> Path:
    """Save the attention matrix (rows: output subwords + <eos>, columns: source subwords) as a PNG heatmap,
    atomically (a bad path is refused naming ``path``, never a temporary file)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..._io import atomic_path

    def show(tok: D.SubwordTokenizer, i: int) -> str:
        return tok.decode([i]) or "·"

    src_labels = [show(bundle.src_tok, i) for i in bundle.src_tok.encode(sentence)]
    tgt_labels = [show(bundle.tgt_tok, i) for i in translation_ids] + ["<eos>"]
    a = attention.detach().float().numpy()[: len(tgt_labels), : len(src_labels)]
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * len(src_labels), 1.0 + 0.4 * len(tgt_labels)))
    ax.imshow(a, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(src_labels)), src_labels, rotation=60, ha="right")
    ax.set_yticks(range(len(tgt_labels[: a.shape[0]])), tgt_labels[: a.shape[0]])
    ax.set_xlabel("English (source subwords)")
    ax.set_ylabel("French (output subwords)")
    path = Path(path)
    try:
        with atomic_path(path, "--show-attention") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return path
