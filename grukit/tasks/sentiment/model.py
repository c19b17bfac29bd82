"""SentimentGRU: embedding → bidirectional grukit.GRU → [attention pooling ; max pooling] → 2 logits.

``model(ids, lengths) -> logits``: ids (B, T) int64 padded with 0, lengths (B,) int64 in 1..T →
logits (B, 2) (index 1 = positive). Padding never changes the result (the GRU honours ``lengths``, the
pooling masks the padded steps). The vocabulary is part of the config, so ``grukit.load`` rebuilds the model
and its tokenizer from the file alone.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from ...nn import GRU
from .data import Encoder


@dataclasses.dataclass
class SentimentConfig:
    """Every constructor argument of :class:`SentimentGRU`."""

    vocab: list
    embed_dim: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.5
    embed_dropout: float = 0.3
    backend: str = "auto"


class SentimentGRU(nn.Module):
    """Binary sentence classifier. ``dropout`` acts before the classifier (and between GRU layers),
    ``embed_dropout`` on the word embeddings (training only)."""

    def __init__(
        self,
        vocab: list,
        embed_dim: int = 128,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.5,
        embed_dropout: float = 0.3,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.encoder = Encoder(vocab)
        self._cfg = SentimentConfig(
            list(vocab),
            embed_dim,
            hidden_size,
            num_layers,
            float(dropout),
            float(embed_dropout),
            backend,
        )
        H = hidden_size
        self.embed = nn.Embedding(len(vocab), embed_dim, padding_idx=0)
        self.embed_drop = nn.Dropout(embed_dropout)
        self.gru = GRU(
            embed_dim,
            H,
            num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
            backend=backend,
        )
        self.attn = nn.Sequential(nn.Linear(2 * H, H), nn.Tanh(), nn.Linear(H, 1, bias=False))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(4 * H, 2)

    @property
    def config(self) -> SentimentConfig:
        return dataclasses.replace(self._cfg, vocab=list(self._cfg.vocab))

    @classmethod
    def from_config(cls, config: SentimentConfig | dict) -> SentimentGRU:
        cfg = dataclasses.asdict(config) if isinstance(config, SentimentConfig) else dict(config)
        return cls(**cfg)

    def features(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """→ (pooled features (B, 4H), attention weights (B, T))."""
        if ids.dim() != 2:
            raise ValueError(f"SentimentGRU expected ids of shape (B, T), got {tuple(ids.shape)}")
        lengths = lengths.to("cpu", torch.long)
        out, _ = self.gru(
            self.embed_drop(self.embed(ids)), lengths=lengths
        )  # (B, T, 2H), zero past the end
        T = ids.shape[1]
        valid = (torch.arange(T)[None, :] < lengths[:, None]).to(ids.device)  # (B, T)
        scores = self.attn(out).squeeze(-1).masked_fill(~valid, float("-inf"))  # (B, T)
        weights = torch.softmax(scores, dim=-1)
        attended = torch.einsum("bt,bth->bh", weights, out)  # (B, 2H)
        maxed = out.masked_fill(~valid[..., None], float("-inf")).amax(dim=1)  # (B, 2H)
        return torch.cat([attended, maxed], dim=-1), weights

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T), lengths (B,) → logits (B, 2)."""
        feats, _ = self.features(ids, lengths)
        return self.out(self.drop(feats))
