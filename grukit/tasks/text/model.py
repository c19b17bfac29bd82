"""CharLM: a character-level language model, embedding → multi-layer grukit.GRU → linear over characters.

``model(ids, h=None) -> (logits, h_n)``: ids (B, T) int64 → logits (B, T, V), h_n (L, B, H).
``model.step(ids_t, h=None) -> (logits_t, h_new)``: ids_t (B,) → logits_t (B, V), via ``GRU.step`` — the
streaming path used for generation; it equals the full-sequence path (tests/tasks/text).
The vocabulary (a string of characters) is part of the config, so ``grukit.load`` rebuilds everything.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from ...nn import GRU
from .data import CharVocab


@dataclasses.dataclass
class CharLMConfig:
    """Every constructor argument of :class:`CharLM`."""

    vocab: str
    embed_dim: int = 64
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.2
    backend: str = "auto"


class CharLM(nn.Module):
    """Character language model. ``dropout`` acts on the embeddings, between GRU layers and before the
    output layer (training only)."""

    def __init__(
        self,
        vocab: str,
        embed_dim: int = 64,
        hidden_size: int = 512,
        num_layers: int = 2,
        dropout: float = 0.2,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.vocab = CharVocab(vocab)
        self._cfg = CharLMConfig(vocab, embed_dim, hidden_size, num_layers, float(dropout), backend)
        V = len(self.vocab)
        self.embed = nn.Embedding(V, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.gru = GRU(
            embed_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            backend=backend,
        )
        self.head = nn.Linear(hidden_size, V)

    @property
    def config(self) -> CharLMConfig:
        return dataclasses.replace(self._cfg)

    @classmethod
    def from_config(cls, config: CharLMConfig | dict) -> CharLM:
        cfg = dataclasses.asdict(config) if isinstance(config, CharLMConfig) else dict(config)
        return cls(**cfg)

    @property
    def num_layers(self) -> int:
        return self._cfg.num_layers

    @property
    def hidden_size(self) -> int:
        return self._cfg.hidden_size

    def forward(self, ids: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """ids (B, T) int64, h (L, B, H) or None → (logits (B, T, V), h_n (L, B, H))."""
        if ids.dim() != 2:
            raise ValueError(f"CharLM expected ids of shape (B, T), got {tuple(ids.shape)}")
        out, h_n = self.gru(self.drop(self.embed(ids)), h)  # (B, T, H)
        return self.head(self.drop(out)), h_n

    def step(self, ids_t: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One character per row: ids_t (B,) int64, h (L, B, H) or None → (logits (B, V), h_new (L, B, H))."""
        if ids_t.dim() != 1:
            raise ValueError(f"CharLM.step expected ids_t of shape (B,), got {tuple(ids_t.shape)}")
        y, h_new = self.gru.step(self.drop(self.embed(ids_t)), h)  # (B, H)
        return self.head(self.drop(y)), h_new
