"""Evaluation: NLL per time step of a split (full sequences), next to the published numbers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import UserInputError
from . import PAPER
from .data import check_dataset, make_loader
from .model import MusicGRU, sequence_nll

PRETRAINED_DIR = Path(__file__).resolve().parents[2] / "pretrained"


def shipped_model_path(dataset: str) -> Path:
    """``grukit/pretrained/music-<dataset>.safetensors``."""
    return PRETRAINED_DIR / f"music-{check_dataset(dataset)}.safetensors"


def load_music_model(
    checkpoint: str | os.PathLike | None, dataset: str | None = None
) -> tuple[MusicGRU, dict]:
    """The model from ``--checkpoint`` (run folder or .safetensors) or, without one, the shipped model for
    ``dataset``. Returns (model in eval mode, file header)."""
    from ...train.run import load_task_model

    model, path, header = load_task_model(
        checkpoint, shipped_model_path(dataset or "jsb"), MusicGRU, "music", return_header=True
    )
    header["path"] = str(path)
    return model, header


@torch.no_grad()
def evaluate_nll(
    model: MusicGRU, seqs: Sequence[np.ndarray], batch_size: int = 16
) -> dict[str, Any]:
    """NLL per time step over ``seqs`` (full sequences, first frame not predicted):
    ``{"nll_per_step", "frames" (predicted), "sequences"}``. Runs in eval mode (no dropout), float64 sums."""
    was_training = model.training
    model.eval()
    total, frames = 0.0, 0
    try:
        for x, lengths in make_loader(seqs, batch_size, shuffle=False):
            bce, n = sequence_nll(model, x, lengths)
            total += float(bce.double())
            frames += int(n)
    finally:
        model.train(was_training)
    if frames == 0:
        raise UserInputError("no frame to evaluate: every sequence has a single frame")
    return {"nll_per_step": total / frames, "frames": frames, "sequences": len(seqs)}


def paper_baselines(dataset: str) -> dict[str, dict[str, float]]:
    """Published test NLL per step for ``dataset``: Chung et al. 2014 GRU/LSTM (+ TCN paper best)."""
    p = PAPER[check_dataset(dataset)]
    names = {"gru": "chung2014_gru", "lstm": "chung2014_lstm", "tcn": "bai2018_tcn_best"}
    return {names[k]: {"nll_per_step": v} for k, v in p.items()}


def results_table(dataset: str, split: str, nll: float, title: str | None = None):
    """A rich Table: this model next to the published numbers (lower is better)."""
    from rich.table import Table

    if title is None:
        title = f"{dataset}: {split} NLL per time step (nats, lower is better)"
    table = Table(title=title or None)
    table.add_column("model")
    table.add_column("NLL/step", justify="right")
    table.add_row("grukit GRU (this model)", f"{nll:.3f}")
    for name, v in paper_baselines(dataset).items():
        label = {
            "chung2014_gru": "Chung et al. 2014 GRU",
            "chung2014_lstm": "Chung et al. 2014 LSTM",
            "bai2018_tcn_best": "Bai et al. 2018 TCN",
        }[name]
        table.add_row(label if split == "test" else f"{label} (test)", f"{v['nll_per_step']:.2f}")
    return table
