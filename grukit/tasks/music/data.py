"""The four piano-roll sets (Boulanger-Lewandowski et al. 2012) as lists of binary (T, 88) arrays.

Files (``--data-dir`` = the ``polyphonic_music`` folder, see its SOURCE.md): ``JSB_Chorales.mat``,
``Nottingham.mat``, ``MuseData.mat``, ``Piano_midi.mat``, MATLAB files with ``traindata``/``validdata``/
``testdata``, each a 1×N object array of uint8 (T_i, 88) matrices. Column k is MIDI pitch 21 + k (A0..C8).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ...datasets import find_data_dir
from ...errors import UserInputError

DATA_NAME = "polyphonic_music"
N_PITCHES = 88
LOWEST_PITCH = 21  # MIDI number of column 0 (A0); column 87 is MIDI 108 (C8)
DATASETS = {
    "jsb": "JSB_Chorales.mat",
    "nottingham": "Nottingham.mat",
    "musedata": "MuseData.mat",
    "piano": "Piano_midi.mat",
}
SPLITS = ("train", "valid", "test")


def check_dataset(name: str) -> str:
    """``name`` lower-cased if it is one of :data:`DATASETS`, else a UserInputError listing them."""
    key = str(name).lower()
    if key not in DATASETS:
        raise UserInputError(f"--dataset must be one of {', '.join(DATASETS)}, got {name!r}")
    return key


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None
) -> dict[str, list[np.ndarray]]:
    """``{"train": [...], "valid": [...], "test": [...]}``, each a list of uint8 arrays (T_i, 88) in {0, 1}.

    ``data_dir`` is the ``polyphonic_music`` folder (default: found by :func:`grukit.datasets.find_data_dir`).
    """
    from scipy.io import loadmat

    key = check_dataset(name)
    folder = find_data_dir(DATA_NAME, data_dir)
    path = Path(folder) / DATASETS[key]
    if not path.is_file():
        raise UserInputError(
            f"{path} not found: the {DATA_NAME} folder should hold {DATASETS[key]}"
        )
    try:
        mat = loadmat(str(path))
    except Exception as e:  # scipy raises several types for a corrupt file
        raise UserInputError(
            f"{path} is not a readable MATLAB file ({type(e).__name__}: {e})"
        ) from None
    out: dict[str, list[np.ndarray]] = {}
    for split in SPLITS:
        field = f"{split}data"
        if field not in mat:
            raise UserInputError(
                f"{path} has no '{field}' entry; expected traindata, validdata and testdata"
            )
        cells = np.asarray(mat[field]).reshape(-1)
        seqs = []
        for i, m in enumerate(cells):
            m = np.asarray(m)
            if m.ndim != 2 or m.shape[1] != N_PITCHES or m.shape[0] < 1:
                raise UserInputError(
                    f"{path}: {field}[{i}] has shape {m.shape}, expected (T, {N_PITCHES}) with T ≥ 1"
                )
            if not np.isin(m, (0, 1)).all():
                raise UserInputError(f"{path}: {field}[{i}] holds values other than 0 and 1")
            seqs.append(m.astype(np.uint8))
        out[split] = seqs
    return out


def collate(seqs: Sequence[np.ndarray | Tensor]) -> tuple[Tensor, Tensor]:
    """Pad sequences to one batch: → (x (B, T_max, 88) float32, zeros past each end; lengths (B,) int64)."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    x = torch.zeros(len(seqs), int(lengths.max()) if len(seqs) else 0, N_PITCHES)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.as_tensor(np.asarray(s), dtype=torch.float32)
    return x, lengths


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches of sequences of similar length (little padding), in a fresh random order each epoch.

    Indices are shuffled with torch's global RNG (so ``grukit.train``'s per-epoch seeding makes the order
    reproducible and resume exact), cut into pools of ``pool`` batches, sorted by length inside each pool,
    cut into batches of ``batch_size``, and the batches shuffled. ``shuffle=False`` gives length-sorted batches.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, pool: int = 50
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.lengths = [int(n) for n in lengths]
        self.batch_size, self.shuffle, self.pool = int(batch_size), bool(shuffle), int(pool)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        n, bs = len(self.lengths), self.batch_size
        if not self.shuffle:
            order = sorted(range(n), key=lambda i: self.lengths[i])
            yield from (order[i : i + bs] for i in range(0, n, bs))
            return
        perm = torch.randperm(n).tolist()
        batches = []
        step = bs * self.pool
        for p in range(0, n, step):
            chunk = sorted(perm[p : p + step], key=lambda i: self.lengths[i])
            batches += [chunk[i : i + bs] for i in range(0, len(chunk), bs)]
        for j in torch.randperm(len(batches)).tolist():
            yield batches[j]


def make_loader(
    seqs: Sequence[np.ndarray], batch_size: int, shuffle: bool
) -> torch.utils.data.DataLoader:
    """A DataLoader of padded batches ``(x (B, T, 88), lengths (B,))`` over ``seqs``, length-bucketed."""
    sampler = BucketBatchSampler([len(s) for s in seqs], batch_size, shuffle=shuffle)
    return torch.utils.data.DataLoader(
        list(seqs),  # type: ignore[arg-type]  # a list is a map-style dataset
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=0,
    )
