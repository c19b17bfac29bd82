"""Training one forecasting model on a panel larger than one machine: Lightning DDP where each rank reads
only its shard of series (:func:`~.tables.read_shard` of a :func:`~.tables.write_sharded` dataset).

Every rank runs the same number of optimizer steps per epoch (``steps`` batches drawn with replacement
from its own windows), so shards of uneven size do not leave one rank waiting for another's gradients.
Lightning's own distributed sampler is off: the data is split by series, not by window.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler

from ...train import fit as fit_run
from ...train import seed_everything
from . import data as D
from .model import ForecastNet
from .tables import read_shard
from .train import ForecastModule
from .windows import default_context, split_windows


def rank_and_world(devices: int, num_nodes: int = 1) -> tuple[int, int]:
    """This process' global rank and the world size, as Lightning's DDP launcher sets them (the first
    process has no LOCAL_RANK: it is rank 0 of its node)."""
    local = int(os.environ.get("LOCAL_RANK", 0))
    node = int(os.environ.get("NODE_RANK", 0))
    return node * devices + local, devices * num_nodes


def fit_sharded(
    folder: str | Path,
    *,
    id_col: str,
    time_col: str,
    target: str,
    horizon: int,
    output_dir: str | Path,
    context: int | None = None,
    log: bool = False,
    scaling: str = "window",
    epochs: int = 1,
    steps: int = 64,
    batch_size: int = 64,
    hidden: int = 64,
    seed: int = 0,
    devices: int = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    accelerator: str = "cpu",
) -> Any:
    """Train a :class:`~.model.ForecastNet` on the series of a sharded panel, each rank on its own shard.

    Run the same script on every rank (Lightning's ``ddp`` strategy starts the other local ranks itself);
    ``log`` must be given (a rank sees only its shard, so it cannot decide it from the data). Returns the
    toolkit's FitResult of this rank.
    """
    rank, world = rank_and_world(devices, num_nodes)
    df = read_shard(folder, rank, world)
    spec = D.make_spec(df, time_col, target, id_col=id_col, log=log, scaling=scaling)
    series = D.to_series(df, spec)
    D.fit_scalers(series, spec, {s.id: len(s) for s in series})
    C = default_context(spec, horizon) if context is None else int(context)
    train_w, val_w, _ = split_windows(series, spec, C, horizon, seed)
    seed_everything(seed)
    model = ForecastNet(
        train_w.panel.past_features, train_w.panel.future_features, C, horizon, hidden_size=hidden
    )
    module = ForecastModule(model)
    draws = torch.Generator().manual_seed(seed * 1000 + rank)
    sampler = RandomSampler(
        train_w.dataset(), replacement=True, num_samples=steps * batch_size, generator=draws
    )
    train_dl = DataLoader(
        train_w.dataset(), batch_size=batch_size, sampler=sampler, collate_fn=train_w.collate
    )
    val_dl = DataLoader(val_w.dataset(), batch_size=1024, collate_fn=val_w.collate)
    return fit_run(
        module,
        train_dl,
        val_dl,
        task="forecast",
        output_dir=Path(output_dir),
        epochs=epochs,
        seed=seed,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        accelerator=accelerator,
        progress=False,
        plot=False,
        trainer_kwargs={"use_distributed_sampler": False},
    )


def shard_sizes(folder: str | Path, world: int) -> list[int]:
    """Rows each of ``world`` ranks reads (for checking a layout's balance)."""
    return [len(read_shard(folder, r, world)) for r in range(world)]


__all__ = ["fit_sharded", "rank_and_world", "shard_sizes"]
