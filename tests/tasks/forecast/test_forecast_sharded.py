"""A sharded panel trained with DDP on 2 CPU ranks (gloo): each rank reads only its series, the shards are
uneven yet both ranks run the same number of steps, and the validation loss is within the seed-to-seed
spread of one-process runs on the whole panel."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grukit.tasks.forecast import tables

SCRIPT = Path(__file__).with_name("sharded_fit_script.py")


def _panel(n: int = 24, T: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    t = np.tile(np.arange(T), n)
    i = np.repeat(np.arange(n), T)
    y = 10 + (i % 5) + 3 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.5, n * T)
    return pd.DataFrame({"id": [f"s{k}" for k in i], "t": t, "y": y})


def _run(folder: Path, out: Path, devices: int, seed: int) -> list[dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", PL_DISABLE_FORK="1")
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(folder), str(out), str(devices), str(seed)],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(devices)]


@pytest.mark.slow
def test_two_rank_sharded_fit(tmp_path):
    df = _panel()
    folder = tables.write_sharded(df, tmp_path / "panel", "id", buckets=8)
    sizes = [len(tables.read_shard(folder, r, 2)) for r in range(2)]
    assert sizes[0] != sizes[1] and sum(sizes) == len(df)  # uneven shards
    one = [_run(folder, tmp_path / f"one{s}", 1, s)[0] for s in (0, 1, 2)]
    two = _run(folder, tmp_path / "two", 2, 0)
    ids = [set(r["ids"]) for r in two]
    assert not ids[0] & ids[1] and ids[0] | ids[1] == set(df["id"])  # each series on one rank
    assert two[0]["steps"] == two[1]["steps"] == one[0]["steps"]  # same steps on every rank
    assert two[0]["val_loss"] == two[1]["val_loss"]  # reduced across the ranks
    losses = [r["val_loss"] for r in one]
    spread = max(losses) - min(losses)
    assert min(losses) - spread <= two[0]["val_loss"] <= max(losses) + spread, (losses, two)


# ------------------------------------------------------------------------- the CLI: grukit forecast --data DIR
def _sharded_args(folder: Path, out: Path, *more: object) -> list[object]:
    return [
        "forecast", "--data", folder, "--id-col", "id", "--time-col", "t", "--target", "y",
        "--horizon", "7", "--context", "28", "--log", "--epochs", "1", "--batch-size", "32",
        "--epoch-windows", "256", "--hidden", "8", "--output-dir", out, *more,
    ]  # fmt: skip


def test_cli_refuses_what_a_sharded_panel_cannot_do(tmp_path, cli):
    from tests.support import one_line_error

    folder = tables.write_sharded(_panel(6, 40), tmp_path / "panel", "id", buckets=4)
    assert not (tmp_path / "panel.csv").exists()
    one_line_error(
        cli("forecast", "--data", folder, "--id-col", "id", "--time-col", "t"), "--target"
    )
    one_line_error(cli(*_sharded_args(folder, tmp_path / "a", "--covariates", "x")), "--covariates")
    one_line_error(
        cli("forecast", "--data", folder, "--id-col", "id", "--time-col", "t", "--target", "y",
            "--devices", "2", "--strategy", "ddp"),
        "--output-dir",
    )  # fmt: skip
    assert not (tmp_path / "a").exists()  # nothing written


@pytest.mark.slow
def test_cli_trains_a_sharded_panel_and_predict_forecasts_a_shard(tmp_path, cli):
    df = _panel(8, 60)
    folder = tables.write_sharded(df, tmp_path / "panel", "id", buckets=4)
    r = cli(*_sharded_args(folder, tmp_path / "run"))
    assert r.code == 0, r.err[-2000:]
    assert (tmp_path / "run" / "model.safetensors").is_file()
    shard = tables.read_shard(folder, 0, 2)
    shard.to_csv(tmp_path / "shard.csv", index=False)
    p = cli("forecast", "predict", "--checkpoint", tmp_path / "run", "--data",
            tmp_path / "shard.csv", "--output-dir", tmp_path / "pred")  # fmt: skip
    assert p.code == 0, p.err[-2000:]
    fc = pd.read_csv(tmp_path / "pred" / "forecast.csv")
    assert set(fc["series"]) == set(shard["id"]) and len(fc) == 7 * shard["id"].nunique()
    assert np.isfinite(fc[["q10", "q50", "q90"]].to_numpy()).all()


@pytest.mark.slow
def test_cli_two_rank_sharded_run(tmp_path):
    """`grukit forecast --data DIR --devices 2 --strategy ddp` on CPU (gloo): both ranks train (each on
    its shard; test_two_rank_sharded_fit checks the split) and rank 0 writes the run folder."""
    folder = tables.write_sharded(_panel(), tmp_path / "panel", "id", buckets=8)
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", PL_DISABLE_FORK="1")
    env.pop("LOCAL_RANK", None)
    grukit = Path(sys.executable).with_name("grukit")  # Lightning re-runs this command per rank
    args = [str(a) for a in _sharded_args(folder, tmp_path / "run", "--devices", "2")]
    proc = subprocess.run(
        [sys.executable, str(grukit), *args, "--strategy", "ddp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained over its shards" in proc.stdout
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert np.isfinite(log["val_loss"].dropna()).all() and len(log["val_loss"].dropna()) >= 1
