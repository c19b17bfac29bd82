"""English→French data: reading ``fra.txt``, normalization, the fixed split, the subword tokenizers, batches.

Data: ``eng_fra/fra.txt`` (Tatoeba via manythings.org/anki, CC-BY 2.0 FR), one pair per line,
``English<TAB>French`` (newer releases add a third attribution column; it is ignored).

Normalization (:func:`normalize`, applied to both sides everywhere: training, references, user input):
Unicode NFKC (turns the French no-break spaces U+00A0/U+202F before ``! ? : ;`` into plain spaces and
``…`` into ``...``), whitespace runs collapsed to one space, ends stripped. Case and punctuation are kept.

Split (:func:`split_of`): SHA-1 of the *split key* (the normalized English sentence, lower-cased), first
8 bytes as an integer, modulo 100: 0–89 train, 90–94 valid, 95–99 test. A sentence and all its French
translations (and case variants of it) therefore land in one split: no English sentence is shared between
splits. The split depends on nothing else (not the file order, not a seed).

Tokenizers (:class:`SubwordTokenizer`): byte-level BPE from Hugging Face ``tokenizers``, one per language,
trained on the training split only. Byte-level means every string encodes and decodes back exactly (no
unknown token). Special ids: 0 ``<pad>``, 1 ``<bos>``, 2 ``<eos>``.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

from ...datasets import find_data_dir
from ...errors import UserInputError

DATASET = "eng_fra"
FILE = "fra.txt"
PAD, BOS, EOS = 0, 1, 2
SPECIALS = ["<pad>", "<bos>", "<eos>"]
SPLITS = ("train", "valid", "test")


def normalize(text: str) -> str:
    """NFKC, whitespace collapsed to single spaces, stripped."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def split_key(english: str) -> str:
    """The key that decides a pair's split: the normalized English sentence, lower-cased."""
    return normalize(english).lower()


def split_of(english: str) -> str:
    """ "train" (90 %), "valid" (5 %) or "test" (5 %), from a SHA-1 hash of :func:`split_key`."""
    h = int.from_bytes(hashlib.sha1(split_key(english).encode("utf-8")).digest()[:8], "big") % 100
    return "train" if h < 90 else ("valid" if h < 95 else "test")


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(English, French) pairs of a ``fra.txt``-style file, both sides normalized.

    Raises UserInputError naming the line when a line has fewer than two tab-separated columns or an empty
    side (a third column, the attribution in newer releases, is ignored)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: file not found (expected English<TAB>French lines)")
    pairs = []
    with open(path, encoding="utf-8", newline="\n") as f:  # lines end at \n only (not \r, U+2028)
        for i, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) < 2:
                raise UserInputError(
                    f"{path}:{i}: expected English<TAB>French, got {len(cols)} column"
                )
            en, fr = normalize(cols[0]), normalize(cols[1])
            if not en or not fr:
                raise UserInputError(
                    f"{path}:{i}: empty {'English' if not en else 'French'} sentence"
                )
            pairs.append((en, fr))
    if not pairs:
        raise UserInputError(f"{path}: no sentence pairs found")
    return pairs


def load_splits(data_dir: str | os.PathLike | None = None) -> dict[str, list[tuple[str, str]]]:
    """{"train": pairs, "valid": pairs, "test": pairs} from the ``eng_fra`` folder, in file order."""
    folder = find_data_dir(DATASET, data_dir)
    path = folder / FILE
    if not path.is_file():
        raise UserInputError(
            f"{folder} has no {FILE}; expected the eng_fra folder (English<TAB>French lines)"
        )
    return split_pairs(read_pairs(path))


def split_pairs(pairs: Sequence[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """Partition pairs by :func:`split_of` of their English side, keeping their order."""
    out: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
    cache: dict[str, str] = {}
    for en, fr in pairs:
        s = cache.get(en)
        if s is None:
            s = cache[en] = split_of(en)
        out[s].append((en, fr))
    return out


def group_references(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Distinct English sentences (first-seen order) with all their French translations."""
    groups: dict[str, list[str]] = {}
    for en, fr in pairs:
        groups.setdefault(en, []).append(fr)
    return list(groups.items())


class SubwordTokenizer:
    """Byte-level BPE (Hugging Face ``tokenizers``): ``encode(text) -> ids``, ``decode(ids) -> text``.

    ``decode(encode(s)) == normalize(s)`` for every string. Ids 0, 1, 2 are ``<pad> <bos> <eos>``;
    ``encode`` adds neither ``<bos>`` nor ``<eos>``; ``decode`` drops special ids.
    """

    def __init__(self, tokenizer) -> None:
        self._tok = tokenizer
        for i, s in enumerate(SPECIALS):
            if tokenizer.token_to_id(s) != i:
                raise ValueError(
                    f"tokenizer must map {s!r} to id {i}, got {tokenizer.token_to_id(s)}"
                )

    @classmethod
    def train(
        cls, texts: Sequence[str], vocab_size: int = 8000, min_frequency: int = 2
    ) -> SubwordTokenizer:
        """Learn a byte-level BPE vocabulary of at most ``vocab_size`` tokens from ``texts``."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < 256 + len(SPECIALS):
            raise ValueError(
                f"vocab_size must be at least {256 + len(SPECIALS)} (bytes + specials), got {vocab_size}"
            )
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator((normalize(t) for t in texts), trainer=trainer, length=len(texts))
        return cls(tok)

    @classmethod
    def from_json(cls, text: str) -> SubwordTokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(text))

    def to_json(self) -> str:
        return self._tok.to_str()

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(normalize(text), add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [
            e.ids
            for e in self._tok.encode_batch([normalize(t) for t in texts], add_special_tokens=False)
        ]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(
            [int(i) for i in ids if int(i) >= len(SPECIALS)], skip_special_tokens=True
        )

    def tokens(self, text: str) -> list[str]:
        """The subword strings of ``text`` (byte-level symbols, e.g. 'Ġ' for a space), for display."""
        return self._tok.encode(normalize(text), add_special_tokens=False).tokens


# ------------------------------------------------------------------------------------------ batches
class PairDataset(torch.utils.data.Dataset):
    """Tokenized pairs: item i is (src ids, tgt ids) as int64 tensors; tgt ends with <eos>."""

    def __init__(self, src: list[list[int]], tgt: list[list[int]]) -> None:
        if len(src) != len(tgt):
            raise ValueError(
                f"expected as many source as target sentences, got {len(src)} and {len(tgt)}"
            )
        self.src = [torch.tensor(s, dtype=torch.long) for s in src]
        self.tgt = [torch.tensor(list(t) + [EOS], dtype=torch.long) for t in tgt]

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.src[i], self.tgt[i]

    def lengths(self) -> list[int]:
        return [len(s) for s in self.src]


def encode_pairs(
    pairs: Sequence[tuple[str, str]],
    src_tok: SubwordTokenizer,
    tgt_tok: SubwordTokenizer,
    max_len: int | None = None,
) -> PairDataset:
    """Tokenize pairs; with ``max_len``, drop pairs whose source or target exceeds ``max_len`` tokens."""
    src = src_tok.encode_batch([p[0] for p in pairs])
    tgt = tgt_tok.encode_batch([p[1] for p in pairs])
    if max_len is not None:
        keep = [
            i for i in range(len(src)) if 0 < len(src[i]) <= max_len and len(tgt[i]) + 1 <= max_len
        ]
        src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
    return PairDataset(src, tgt)


def pad_batch(seqs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Right-pad int64 sequences with <pad> → (ids (B, T), lengths (B,))."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), int(lengths.max()) if len(seqs) else 0), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out, lengths


def collate(items: Sequence[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """Batch of pairs → src (B, S), src_len (B,), tgt_in (B, T) = <bos> y[:-1], tgt_out (B, T) = y."""
    src, src_len = pad_batch([s for s, _ in items])
    tgt_out, _ = pad_batch([t for _, t in items])
    tgt_in = torch.cat([torch.full((len(items), 1), BOS, dtype=torch.long), tgt_out[:, :-1]], dim=1)
    tgt_in = tgt_in.masked_fill(tgt_in == EOS, PAD)
    return {"src": src, "src_len": src_len, "tgt_in": tgt_in, "tgt_out": tgt_out}


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches of similar source length (less padding, shorter recurrent loops): shuffle, cut into pools of
    ``pool`` batches, sort each pool by length, cut into batches, shuffle the batches.

    Randomness comes from ``generator`` when set (training sets a fresh one each epoch, so resume is exact),
    else from torch's global generator; it is drawn lazily, at the first batch. ``shuffle=False`` sorts by length.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, pool: int = 50
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.lengths, self.batch_size, self.shuffle, self.pool = (
            list(lengths),
            batch_size,
            shuffle,
            pool,
        )
        self.generator: torch.Generator | None = None

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        n = len(self.lengths)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).tolist()
        else:
            order = sorted(range(n), key=lambda i: self.lengths[i])
        step = self.batch_size * self.pool
        batches = []
        for k in range(0, n, step):
            chunk = sorted(order[k : k + step], key=lambda i: self.lengths[i])
            batches += [
                chunk[j : j + self.batch_size] for j in range(0, len(chunk), self.batch_size)
            ]
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=self.generator).tolist()
            batches = [batches[i] for i in perm]
        yield from batches


def tokenizers_to_extra(src_tok: SubwordTokenizer, tgt_tok: SubwordTokenizer) -> dict:
    """The ``extra`` entry stored in a model file: both tokenizers as JSON text."""
    return {
        "src_tokenizer": src_tok.to_json(),
        "tgt_tokenizer": tgt_tok.to_json(),
        "src_lang": "en",
        "tgt_lang": "fr",
    }


def tokenizers_from_extra(
    extra: dict | None, where: str = "model file"
) -> tuple[SubwordTokenizer, SubwordTokenizer]:
    if not extra or "src_tokenizer" not in extra or "tgt_tokenizer" not in extra:
        raise UserInputError(
            f"{where} holds no tokenizers; was it written by `grukit translate train`?"
        )
    return SubwordTokenizer.from_json(extra["src_tokenizer"]), SubwordTokenizer.from_json(
        extra["tgt_tokenizer"]
    )
