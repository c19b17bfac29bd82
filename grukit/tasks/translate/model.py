"""The translation model: bidirectional GRU encoder, GRU decoder with Luong attention.

Shapes (B batch, S source length, T target length, E embedding, He/Hd encoder/decoder hidden, V vocab)::

    memory, h_enc = BiGRU(Emb_src(x), lengths)       memory (B, S, 2He); h_enc (2, B, He)
    h_0     = tanh(W_b [h_enc_fwd; h_enc_bwd])        (1, B, Hd)   bridge to the decoder state
    d_t     = GRU(Emb_tgt(y_{t-1}), d_{t-1})          (B, T, Hd)   teacher forcing: y_0 = <bos>
    a_t     = softmax_s(d_t · W_a m_s)                (B, T, S)    Luong "general" score, padding masked
    c_t     = Σ_s a_ts m_s                            (B, T, 2He)
    h̃_t     = tanh(W_c [c_t; d_t])                    (B, T, E)    attentional state
    p(y_t)  = softmax(h̃_t Emb_tgtᵀ + b)               (B, T, V)    output layer tied to the target embedding

Luong et al. 2015 ("Effective Approaches to Attention-based NMT", the "general" score, without input
feeding) so that the decoder GRU runs over the whole target in one call during training; Bahdanau et al.
2015 for the bidirectional encoder. Recurrences are ``grukit.GRU`` (encoder with ``lengths``; decoder
``step`` at inference).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import grukit

from .data import BOS, PAD


@dataclasses.dataclass
class TranslatorConfig:
    """Every constructor argument of :class:`Translator`."""

    src_vocab: int
    tgt_vocab: int
    emb_dim: int = 256
    enc_hidden: int = 256
    dec_hidden: int = 512
    dropout: float = 0.2


class Memory(NamedTuple):
    """The encoded source: memory (B, S, 2He), keys = W_a memory (B, S, Hd), mask (B, S) True at real tokens."""

    memory: Tensor
    keys: Tensor
    mask: Tensor


class Translator(nn.Module):
    """Sequence-to-sequence GRU with attention; see the module docstring for the equations.

    ``forward(src (B, S), src_len (B,), tgt_in (B, T))`` → logits (B, T, V) (teacher forcing).
    Decoding (greedy, beam search) is in :mod:`grukit.tasks.translate.decode`.
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        emb_dim: int = 256,
        enc_hidden: int = 256,
        dec_hidden: int = 512,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        for name, v in (
            ("src_vocab", src_vocab),
            ("tgt_vocab", tgt_vocab),
            ("emb_dim", emb_dim),
            ("enc_hidden", enc_hidden),
            ("dec_hidden", dec_hidden),
        ):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self._config = TranslatorConfig(
            src_vocab, tgt_vocab, emb_dim, enc_hidden, dec_hidden, float(dropout)
        )
        self.src_emb = nn.Embedding(src_vocab, emb_dim, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(tgt_vocab, emb_dim, padding_idx=PAD)
        self.encoder = grukit.GRU(emb_dim, enc_hidden, bidirectional=True, batch_first=True)
        self.bridge = nn.Linear(2 * enc_hidden, dec_hidden)
        self.decoder = grukit.GRU(emb_dim, dec_hidden, batch_first=True)
        self.attn_key = nn.Linear(2 * enc_hidden, dec_hidden, bias=False)  # W_a
        self.combine = nn.Linear(2 * enc_hidden + dec_hidden, emb_dim)  # W_c
        self.out_bias = nn.Parameter(torch.zeros(tgt_vocab))
        self.drop = nn.Dropout(dropout)
        nn.init.normal_(self.src_emb.weight, std=emb_dim**-0.5)
        nn.init.normal_(self.tgt_emb.weight, std=emb_dim**-0.5)
        with torch.no_grad():
            self.src_emb.weight[PAD].zero_()
            self.tgt_emb.weight[PAD].zero_()

    @property
    def config(self) -> TranslatorConfig:
        return dataclasses.replace(self._config)

    @classmethod
    def from_config(cls, config: TranslatorConfig | dict) -> Translator:
        cfg = dataclasses.asdict(config) if isinstance(config, TranslatorConfig) else dict(config)
        return cls(**cfg)

    # ------------------------------------------------------------------------------------------ parts
    def encode(self, src: Tensor, src_len: Tensor) -> tuple[Memory, Tensor]:
        """src (B, S) ids, src_len (B,) → (Memory, decoder initial state h_0 (1, B, Hd))."""
        if src.dim() != 2:
            raise ValueError(f"src must be (B, S) token ids, got shape {tuple(src.shape)}")
        S = src.shape[1]
        src_len = src_len.to("cpu", torch.long)
        x = self.drop(self.src_emb(src))  # (B, S, E)
        memory, h_n = self.encoder(x, lengths=src_len)  # (B, S, 2He), (2, B, He)
        h0 = torch.tanh(self.bridge(torch.cat([h_n[0], h_n[1]], -1)))  # (B, Hd)
        mask = torch.arange(S)[None, :] < src_len[:, None]  # (B, S)
        return Memory(memory, self.attn_key(memory), mask.to(src.device)), h0.unsqueeze(0)

    def attend(self, dec: Tensor, mem: Memory) -> tuple[Tensor, Tensor]:
        """dec (B, T, Hd) decoder states → (logits (B, T, V), attention (B, T, S))."""
        scores = torch.bmm(dec, mem.keys.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(~mem.mask[:, None, :], float("-inf"))
        attn = torch.softmax(scores, dim=-1)  # (B, T, S)
        ctx = torch.bmm(attn, mem.memory)  # (B, T, 2He)
        h_att = torch.tanh(self.combine(torch.cat([ctx, dec], -1)))  # (B, T, E)
        logits = F.linear(self.drop(h_att), self.tgt_emb.weight, self.out_bias)  # (B, T, V)
        return logits, attn

    def forward(self, src: Tensor, src_len: Tensor, tgt_in: Tensor, return_attention: bool = False):
        """Teacher forcing: logits (B, T, V) for each next target token (and attention (B, T, S))."""
        mem, h0 = self.encode(src, src_len)
        dec, _ = self.decoder(self.drop(self.tgt_emb(tgt_in)), h0)  # (B, T, Hd)
        logits, attn = self.attend(dec, mem)
        return (logits, attn) if return_attention else logits

    def step(self, prev: Tensor, h: Tensor, mem: Memory) -> tuple[Tensor, Tensor, Tensor]:
        """One decoding step: prev (B,) token ids, h (1, B, Hd) → (log-probs (B, V), h_new, attention (B, S)).

        <pad> and <bos> get probability 0 (they are never outputs)."""
        y, h_new = self.decoder.step(self.tgt_emb(prev), h)  # (B, Hd), (1, B, Hd)
        logits, attn = self.attend(y.unsqueeze(1), mem)
        logits = logits[:, 0].float()
        logits[:, PAD] = float("-inf")  # never emitted while decoding
        logits[:, BOS] = float("-inf")
        return torch.log_softmax(logits, dim=-1), h_new, attn[:, 0]
