"""Batched decoding for :class:`~grukit.tasks.translate.model.Translator`: greedy and beam search.

Beam search keeps ``beam_size`` hypotheses per sentence. Each step extends every live hypothesis by every
token and keeps the ``beam_size`` best by summed log-probability; a hypothesis that emits ``<eos>`` stays in
the beam, finished, with its score frozen (it can only be extended by ``<pad>`` at log-probability 0). The
search stops when every hypothesis of every sentence has finished or at ``max_len`` tokens. The answer is
the hypothesis with the best ``score / lp(length)``, where ``lp(n) = ((5 + n) / 6) ** length_penalty``
(Wu et al. 2016, GNMT; ``length_penalty=0`` means raw log-probability). With ``beam_size=1`` this is
exactly greedy decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .data import BOS, EOS, PAD
from .model import Memory, Translator


@dataclass
class Decoded:
    """Decoder output for a batch: ``tokens[b]`` the ids without <bos>/<eos>, ``scores`` the summed
    log-probabilities (B,), ``attention[b]`` (len(tokens[b]) + 1, S_b) rows per output token incl. <eos>
    (only when requested)."""

    tokens: list[list[int]]
    scores: Tensor
    attention: list[Tensor] | None = None


def default_max_len(src_len: Tensor) -> Tensor:
    """Target length limit per sentence: 2 × source + 10 tokens."""
    return 2 * src_len.to(torch.long) + 10


def _select(mem: Memory, index: Tensor) -> Memory:
    return Memory(
        mem.memory.index_select(0, index),
        mem.keys.index_select(0, index),
        mem.mask.index_select(0, index),
    )


@torch.no_grad()
def greedy(
    model: Translator,
    src: Tensor,
    src_len: Tensor,
    max_len: int | None = None,
    return_attention: bool = False,
) -> Decoded:
    """Batched greedy decoding: src (B, S), src_len (B,) → :class:`Decoded`."""
    model.eval()
    B = src.shape[0]
    mem, h = model.encode(src, src_len)
    limit = int(default_max_len(src_len).max()) if max_len is None else int(max_len)
    prev = torch.full((B,), BOS, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    scores = torch.zeros(B)
    out, attns = [], []
    for _ in range(limit):
        logp, h, attn = model.step(prev, h, mem)  # (B, V), (1, B, Hd), (B, S)
        lp, tok = logp.max(-1)
        tok = tok.masked_fill(done, PAD)
        scores += lp.masked_fill(done, 0.0)
        out.append(tok)
        attns.append(attn)
        done = done | (tok == EOS)
        prev = tok
        if bool(done.all()):
            break
    return _finish(
        torch.stack(out, 1) if out else torch.zeros(B, 0, dtype=torch.long),
        scores,
        torch.stack(attns, 1) if return_attention and attns else None,
        src_len,
    )


def _finish(seqs: Tensor, scores: Tensor, attn: Tensor | None, src_len: Tensor) -> Decoded:
    """seqs (B, L) with <eos>/<pad> → Decoded (tokens cut at the first <eos>)."""
    tokens: list[list[int]] = []
    attention: list[Tensor] | None = [] if attn is not None else None
    for b, row in enumerate(seqs.tolist()):
        n = row.index(EOS) if EOS in row else len(row)
        tokens.append([t for t in row[:n] if t != PAD])
        if attention is not None and attn is not None:
            attention.append(attn[b, : min(n + 1, len(row)), : int(src_len[b])].clone())
    return Decoded(tokens, scores, attention)


@torch.no_grad()
def beam_search(
    model: Translator,
    src: Tensor,
    src_len: Tensor,
    beam_size: int = 5,
    length_penalty: float = 1.0,
    max_len: int | None = None,
    return_attention: bool = False,
) -> Decoded:
    """Batched beam search (see the module docstring): src (B, S), src_len (B,) → :class:`Decoded`."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    if length_penalty < 0:
        raise ValueError(f"length_penalty must be ≥ 0, got {length_penalty}")
    model.eval()
    B, K = src.shape[0], beam_size
    mem, h = model.encode(src, src_len)
    flat = torch.arange(B).repeat_interleave(K)  # (B·K,) sentence of each hypothesis
    mem, h = _select(mem, flat), h.index_select(1, flat)
    limit = int(default_max_len(src_len).max()) if max_len is None else int(max_len)
    scores = torch.full((B, K), float("-inf"))
    scores[:, 0] = 0.0  # one live start per sentence
    prev = torch.full((B * K,), BOS, dtype=torch.long)
    finished = torch.zeros(B, K, dtype=torch.bool)
    lengths = torch.zeros(B, K, dtype=torch.long)  # tokens emitted incl. <eos>
    hist = torch.zeros(B, K, 0, dtype=torch.long)
    attn_hist = None
    for _ in range(limit):
        logp, h, attn = model.step(prev, h, mem)  # (B·K, V), (1, B·K, Hd), (B·K, S)
        V = logp.shape[-1]
        logp = logp.view(B, K, V)
        fin = finished.unsqueeze(-1)
        frozen = torch.full_like(logp, float("-inf"))
        frozen[..., PAD] = 0.0  # a finished hypothesis continues with <pad> only
        cand = scores.unsqueeze(-1) + torch.where(fin, frozen, logp)  # (B, K, V)
        top, idx = cand.view(B, K * V).topk(K, dim=-1)  # (B, K)
        beam, tok = idx // V, idx % V
        scores = top
        finished = finished.gather(1, beam)
        lengths = lengths.gather(1, beam) + (~finished).long()
        finished = finished | (tok == EOS)
        hist = torch.cat(
            [hist.gather(1, beam.unsqueeze(-1).expand(-1, -1, hist.shape[-1])), tok.unsqueeze(-1)],
            -1,
        )
        src_index = (torch.arange(B).unsqueeze(1) * K + beam).view(-1)  # (B·K,) parent hypothesis
        h = h.index_select(1, src_index)
        if return_attention:
            a = attn.index_select(0, src_index).view(B, K, 1, -1)
            attn_hist = (
                a
                if attn_hist is None
                else torch.cat(
                    [
                        attn_hist.view(B * K, -1, a.shape[-1])
                        .index_select(0, src_index)
                        .view(B, K, -1, a.shape[-1]),
                        a,
                    ],
                    2,
                )
            )
        prev = tok.view(-1)
        if bool((finished | torch.isinf(scores)).all()):
            break
    lp = ((5.0 + lengths.clamp(min=1).float()) / 6.0) ** length_penalty
    best = (scores / lp).masked_fill(torch.isinf(scores), float("-inf")).argmax(-1)  # (B,)
    seqs = hist[torch.arange(B), best]  # (B, L)
    attn_best = (
        attn_hist[torch.arange(B), best] if return_attention and attn_hist is not None else None
    )
    return _finish(seqs, scores[torch.arange(B), best], attn_best, src_len)
