"""SST-2 (binary Stanford Sentiment Treebank): files, tokenizer, vocabulary and batches.

Files (``../shared/data/sst2/SOURCE.md``): ``train.tsv`` (67,349 labelled phrases, header
``label\\tsentence``, CRLF line endings), ``dev.tsv`` (872 sentences) and ``test.tsv`` (1,821 sentences, the
original labelled SST-2 test set), both with header ``label\\tcontent`` and LF endings. Every line is
``label<TAB>text``, label 0 (negative) or 1 (positive); the text is lowercased and tokenized already, so the
tokenizer splits on whitespace. Standard use: train on train, select on dev, report on test.

The vocabulary is built from the training split only; words never seen there map to ``<unk>``.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from ...datasets import find_data_dir
from ...errors import UserInputError

NAME = "sst2"
SPLITS = ("train", "dev", "test")
FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
TEXT_HEADERS = ("sentence", "content")  # train.tsv says "sentence", dev/test say "content"
PAD, UNK = "<pad>", "<unk>"
LABELS = ("negative", "positive")


def tokenize(text: str) -> list[str]:
    """Lowercase and split on whitespace (SST-2's text is tokenized already: ``it 's`` , ``n't``)."""
    return text.lower().split()


def read_tsv(path: str | os.PathLike) -> tuple[list[str], list[int]]:
    """(texts, labels) of one SST-2 file; accepts LF or CRLF endings and either header; refuses anything else
    with the file and line number."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"SST-2 file not found: {path}")
    raw = path.read_bytes().decode("utf-8")
    lines = raw.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    if not lines:
        raise UserInputError(f"{path} is empty")
    header = lines[0].split("\t")
    if len(header) != 2 or header[0] != "label" or header[1] not in TEXT_HEADERS:
        raise UserInputError(
            f"{path}: expected the header 'label<TAB>sentence' or 'label<TAB>content', "
            f"got {lines[0]!r}"
        )
    texts, labels = [], []
    for no, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != 2 or parts[0] not in ("0", "1") or not parts[1].strip():
            raise UserInputError(
                f"{path}:{no}: expected 'LABEL<TAB>TEXT' with LABEL 0 or 1 and non-empty text, "
                f"got {line[:80]!r}"
            )
        labels.append(int(parts[0]))
        texts.append(parts[1])
    return texts, labels


def load_split(
    split: str, data_dir: str | os.PathLike | None = None
) -> tuple[list[str], list[int]]:
    """(texts, labels) of ``split`` ("train", "dev" or "test")."""
    if split not in SPLITS:
        raise UserInputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return read_tsv(find_data_dir(NAME, data_dir) / FILES[split])


def build_vocab(texts: Sequence[str], min_freq: int = 1, max_size: int | None = None) -> list[str]:
    """``[<pad>, <unk>, words...]``: words of ``texts`` seen at least ``min_freq`` times, most frequent
    first (ties alphabetical), at most ``max_size`` entries in all."""
    counts = Counter(w for t in texts for w in tokenize(t))
    words = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
    vocab = [PAD, UNK] + [w for w in words if w not in (PAD, UNK)]
    return vocab[:max_size] if max_size else vocab


class Encoder:
    """Words → ids with a fixed vocabulary (index 0 = padding, 1 = unknown)."""

    def __init__(self, vocab: Sequence[str]) -> None:
        if len(vocab) < 2 or vocab[0] != PAD or vocab[1] != UNK:
            raise ValueError(f"vocabulary must start with {PAD!r}, {UNK!r}, got {list(vocab[:2])}")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, 1) for w in tokenize(text)]


class SentimentDataset(Dataset):
    """Encoded sentences: item i = (ids (T_i,) int64, label int)."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int], encoder: Encoder) -> None:
        if len(texts) != len(labels):
            raise ValueError(f"got {len(texts)} texts but {len(labels)} labels")
        self.ids = [torch.tensor(encoder.encode(t) or [1], dtype=torch.long) for t in texts]
        self.labels = [int(y) for y in labels]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.ids[i], self.labels[i]


def collate(items: Sequence[tuple[Tensor, int]]) -> tuple[Tensor, Tensor, Tensor]:
    """→ (ids (B, T) padded with 0, lengths (B,) int64, labels (B,) int64)."""
    lengths = torch.tensor([len(x) for x, _ in items], dtype=torch.long)
    ids = torch.zeros(len(items), int(lengths.max()), dtype=torch.long)
    for b, (x, _) in enumerate(items):
        ids[b, : len(x)] = x
    return ids, lengths, torch.tensor([y for _, y in items], dtype=torch.long)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length (less padding): shuffle, sort within pools of ``pool`` batches, shuffle the
    batches. The order depends only on (seed, epoch) — Lightning calls ``set_epoch`` — so a resumed run sees
    the same batches."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        pool: int = 50,
        shuffle: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.lengths, self.batch_size, self.seed, self.pool, self.shuffle = (
            list(lengths),
            batch_size,
            seed,
            pool,
            shuffle,
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        idx = list(range(len(self.lengths)))
        if not self.shuffle:
            idx.sort(key=lambda i: self.lengths[i])
            yield from (idx[s : s + self.batch_size] for s in range(0, len(idx), self.batch_size))
            return
        rng = random.Random(self.seed * 100_003 + self.epoch)
        rng.shuffle(idx)
        span = self.batch_size * self.pool
        batches = []
        for s in range(0, len(idx), span):
            chunk = sorted(idx[s : s + span], key=lambda i: self.lengths[i])
            batches += [
                chunk[k : k + self.batch_size] for k in range(0, len(chunk), self.batch_size)
            ]
        rng.shuffle(batches)
        yield from batches
