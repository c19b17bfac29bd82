"""Run by test_forecast_sharded.py: a sharded forecast fit, DDP over ``devices`` CPU ranks (gloo).

python sharded_fit_script.py DATASET OUT DEVICES SEED
"""

import json
import sys
from pathlib import Path

import torch

from grukit.tasks.forecast.sharded import fit_sharded, rank_and_world
from grukit.tasks.forecast.tables import read_shard


def main(folder: str, out: str, devices: int, seed: int) -> None:
    torch.set_num_threads(1)
    rank, world = rank_and_world(devices)
    ids = sorted(set(read_shard(folder, rank, world)["id"].astype(str)))
    res = fit_sharded(
        folder, id_col="id", time_col="t", target="y", horizon=7, context=28, log=True,
        output_dir=Path(out) / "run", epochs=2, steps=24, batch_size=32, hidden=16, seed=seed,
        devices=devices, strategy="ddp" if devices > 1 else "auto", accelerator="cpu",
    )  # fmt: skip
    hist = res.history
    Path(out, f"rank{rank}.json").write_text(
        json.dumps(
            {
                "ids": ids,
                "val_loss": float(hist[-1]["val_loss"]),
                "steps": int(hist[-1]["step"]),
                "world": world,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
