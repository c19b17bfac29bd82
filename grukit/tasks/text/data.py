"""tiny-shakespeare: the text, its split, the character vocabulary and truncated-BPTT batches.

Split (documented, fixed): the first 90% of the characters are ``train``, the last 10% ``valid``
(the nanoGPT convention; ``../shared/data/tinyshakespeare/SOURCE.md``). There is no test split.

Batches for truncated back-propagation through time: the training text is cut into ``batch_size``
contiguous streams of equal length; batch ``i`` holds characters ``[i·T, (i+1)·T)`` of every stream (input)
and the same window shifted by one (target). Row ``b`` of batch ``i+1`` therefore continues row ``b`` of
batch ``i``, and the model carries its GRU state from one batch to the next.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ...datasets import find_data_dir
from ...errors import UserInputError

NAME = "tinyshakespeare"
FILE = "input.txt"
TRAIN_FRACTION = 0.9
SPLITS = ("train", "valid")


def load_text(data_dir: str | os.PathLike | None = None) -> str:
    """The whole corpus (``input.txt`` of the ``tinyshakespeare`` folder found per docs/conventions.md)."""
    folder = find_data_dir(NAME, data_dir)
    path = Path(folder) / FILE
    if not path.is_file():
        raise UserInputError(
            f"{folder} has no {FILE}; expected the tiny-shakespeare folder holding {FILE}"
        )
    text = path.read_text(encoding="utf-8")
    if not text:
        raise UserInputError(f"{path} is empty")
    return text


def split_text(text: str, split: str, train_fraction: float = TRAIN_FRACTION) -> str:
    """``split`` ("train" or "valid") of ``text``: the first ``train_fraction`` of characters, or the rest."""
    if split not in SPLITS:
        raise UserInputError(f"split must be one of {SPLITS}, got {split!r}")
    cut = int(len(text) * train_fraction)
    return text[:cut] if split == "train" else text[cut:]


class CharVocab:
    """The characters a model knows, in a fixed order (index = position in ``chars``)."""

    def __init__(self, chars: str) -> None:
        if not chars:
            raise ValueError("CharVocab needs at least one character, got an empty string")
        if len(set(chars)) != len(chars):
            raise ValueError("CharVocab expected distinct characters, got repeats")
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The sorted set of characters of ``text``."""
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> Tensor:
        """``text`` → int64 ids (len(text),); a character outside the vocabulary is a UserInputError."""
        try:
            return torch.tensor([self.index[c] for c in text], dtype=torch.long)
        except KeyError as e:
            raise UserInputError(
                f"character {e.args[0]!r} is not in the model's vocabulary "
                f"({len(self.chars)} characters: {self.chars!r})"
            ) from None

    def decode(self, ids) -> str:
        """int ids (any iterable or tensor) → text."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        return "".join(self.chars[i] for i in ids)


def stream_layout(ids: Tensor, batch_size: int) -> Tensor:
    """ids (N,) → (batch_size, N // batch_size): ``batch_size`` contiguous streams (the remainder dropped)."""
    n = ids.numel() // batch_size
    if n < 2:
        raise UserInputError(f"{ids.numel()} characters are too few for {batch_size} streams")
    return ids[: n * batch_size].view(batch_size, n)


class StreamBatches(Dataset):
    """Truncated-BPTT batches over ``ids``: item ``i`` is ``(x, y)``, each (batch_size, ≤ seq_len) int64, with
    ``y`` = ``x`` shifted by one character; consecutive items continue each row (see the module docstring).
    Only full windows are used (fewer than ``seq_len`` characters at the end of each stream are dropped).

    ``part``/``parts`` restrict the items to the ``part``-th of ``parts`` equal consecutive slices, so one
    pass over the text can be cut into several shorter epochs. Use it with ``DataLoader(ds, batch_size=None)``
    and no shuffling.
    """

    def __init__(
        self, ids: Tensor, batch_size: int, seq_len: int, part: int = 0, parts: int = 1
    ) -> None:
        if seq_len < 1:
            raise ValueError(f"seq_len must be at least 1, got {seq_len}")
        if not 0 <= part < parts:
            raise ValueError(f"part must be in [0, {parts}), got {part}")
        self.streams = stream_layout(ids, batch_size)  # (B, n)
        self.seq_len = seq_len
        n_windows = (
            self.streams.shape[1] - 1
        ) // seq_len  # full windows only (equal batches, exact means)
        bounds = [round(k * n_windows / parts) for k in range(parts + 1)]
        self.first, self.last = bounds[part], bounds[part + 1]
        if self.last <= self.first:
            raise UserInputError(
                f"the text gives {n_windows} windows of {seq_len} characters, too few for "
                f"{parts} parts"
            )

    def __len__(self) -> int:
        return self.last - self.first

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        start = (self.first + i) * self.seq_len
        stop = start + self.seq_len
        return self.streams[:, start:stop], self.streams[:, start + 1 : stop + 1]
