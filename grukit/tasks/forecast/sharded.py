"""Training one forecasting model on a panel larger than one machine: Lightning DDP where each rank reads
only its shard of series (:func:`~.tables.read_shard` of a :func:`~.tables.write_sharded` dataset).

Every rank runs the same number of optimizer steps per epoch (``steps`` batches drawn with replacement
from its own windows), so shards of uneven size do not leave one rank waiting for another's gradients.
Lightning's own distributed sampler is off: the data is split by series, not by window.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from ...errors import UserInputError
from .tables import BUCKET_COL, read_shard

# light at import (the CLI's refusals come before torch and Lightning are imported); fit_sharded
# imports the rest


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
    output_dir: str | Path | None,
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
    overwrite: bool = False,
) -> Any:
    """Train a :class:`~.model.ForecastNet` on the series of a sharded panel, each rank on its own shard.

    Run the same script on every rank (Lightning's ``ddp`` strategy starts the other local ranks itself);
    ``log`` must be given (a rank sees only its shard, so it cannot decide it from the data). The model
    file holds the data spec (without per-series scalers: with ``scaling="window"`` each window is
    scaled by its own context), so ``grukit forecast predict`` forecasts any shard or table with it.
    Returns the toolkit's FitResult of this rank.
    """
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from ...train import fit as fit_run
    from ...train import seed_everything
    from . import data as D
    from .model import ForecastNet
    from .train import ForecastModule
    from .windows import default_context, split_windows

    rank, world = rank_and_world(devices, num_nodes)
    df = read_shard(folder, rank, world)
    if df.empty:
        raise UserInputError(
            f"{folder}: rank {rank} of {world} has no series (fewer buckets hold data than ranks); "
            f"use fewer --devices/--num-nodes or write the panel with more buckets"
        )
    spec = D.make_spec(df, time_col, target, id_col=id_col, log=log, scaling=scaling)
    series = D.to_series(df, spec)
    D.fit_scalers(series, spec, dict(zip(D.ids_of(series), D.lengths_of(series).tolist())))
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
        output_dir=None if output_dir is None else Path(output_dir),  # None: runs/forecast-<time>
        epochs=epochs,
        seed=seed,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        accelerator=accelerator,
        progress=False,
        plot=False,
        trainer_kwargs={"use_distributed_sampler": False},
        overwrite=overwrite,
        save_extra={"spec": dataclasses.asdict(dataclasses.replace(spec, scalers={}))},
    )


def is_sharded(path: str | Path) -> bool:
    """Whether ``path`` is a folder in the layout of :func:`~.tables.write_sharded`: ``bucket=<b>/``
    subfolders of parquet files."""
    p = Path(path).expanduser()
    if not p.is_dir():
        return False
    return any(
        d.is_dir() and d.name.startswith(f"{BUCKET_COL}=") and d.name.split("=", 1)[1].isdigit()
        for d in p.iterdir()
    )


def run_from_cli(
    folder: Path,
    *,
    id_col: str | None,
    time_col: str | None,
    target: str | None,
    horizon: int | None,
    context: int | None,
    log: bool | None,
    scaling: str | None,
    epochs: int,
    batch_size: int | None,
    epoch_windows: int | None,
    hidden: int,
    seed: int,
    devices: str,
    num_nodes: int,
    strategy: str,
    accelerator: str,
    output_dir: Path | None,
    overwrite: bool,
    unsupported: dict[str, Any],
    threads: int = 1,
) -> Any:
    """``grukit forecast --data FOLDER`` on a sharded panel: check the options (one line each), then
    :func:`fit_sharded` on this rank's shard. Returns the FitResult (None on a rank other than 0)."""
    given = [flag for flag, v in unsupported.items() if v]
    if given:
        raise UserInputError(
            f"{', '.join(given)}: not available for a sharded panel ({folder}), which trains one model "
            f"over its shards (forecast with `grukit forecast predict --checkpoint RUN --data TABLE`)"
        )
    for flag, v in (("--id-col", id_col), ("--time-col", time_col), ("--target", target)):
        if not v:
            raise UserInputError(f"{flag} is needed with a sharded panel ({folder})")
    try:
        n_dev = int(devices)
    except ValueError:
        raise UserInputError(
            f"--devices must be a number of processes with a sharded panel, got {devices!r}"
        ) from None
    if n_dev * num_nodes > 1 and output_dir is None:
        raise UserInputError(
            "--output-dir is needed with a sharded panel on several processes (every rank writes to it)"
        )
    import torch

    from .train import BIG_WINDOWS

    torch.set_num_threads(threads)
    bs = batch_size or 256
    res = fit_sharded(
        folder,
        id_col=str(id_col),
        time_col=str(time_col),
        target=str(target),
        horizon=horizon or 7,
        output_dir=output_dir,
        context=context,
        log=bool(log),
        scaling=scaling or "window",
        epochs=epochs,
        steps=max(1, math.ceil((epoch_windows or BIG_WINDOWS) / bs)),
        batch_size=bs,
        hidden=hidden,
        seed=seed,
        devices=n_dev,
        num_nodes=num_nodes,
        strategy=strategy,
        accelerator=accelerator,
        overwrite=overwrite,
    )
    return res if res.trainer.is_global_zero else None


def shard_sizes(folder: str | Path, world: int) -> list[int]:
    """Rows each of ``world`` ranks reads (for checking a layout's balance)."""
    return [len(read_shard(folder, r, world)) for r in range(world)]


__all__ = ["fit_sharded", "is_sharded", "rank_and_world", "run_from_cli", "shard_sizes"]
