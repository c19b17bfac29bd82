"""fit() writes the run folder of docs/conventions.md; the saved model is the best on validation."""

import csv
import json

import pytest
import torch
from train_toy import toy_data, toy_loaders, toy_module

import grukit
from grukit.errors import UserInputError
from grukit.train import RunDir, fit, metrics_record, resolve_checkpoint
from grukit.train.options import parse_devices


def _val_loss(model, x, y):
    with torch.no_grad():
        out, _ = model(x)
    return float(((out[:, -1].mean(-1) - y) ** 2).mean())


def test_fit_writes_run_folder_and_best_model(tmp_path):
    res = fit(
        toy_module(),
        *toy_loaders(),
        task="toy",
        output_dir=tmp_path / "run",
        epochs=5,
        seed=0,
        progress=False,
        config={"lr": 0.02, "path": tmp_path},
    )
    run = tmp_path / "run"
    for name in ("model.safetensors", "config.json", "log.csv", "last.ckpt", "loss.png"):
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text()) == {
        "lr": 0.02,
        "path": str(tmp_path),
        "status": "complete",
    }
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(5))
    train_losses = [float(r["train_loss"]) for r in rows]
    assert train_losses[-1] < train_losses[0]
    # the file holds the model of the epoch with the lowest logged val_loss: recompute its val loss directly
    vals = [float(r["val_loss"]) for r in rows]
    best = min(range(5), key=vals.__getitem__)
    assert res.best_epoch == best and res.best_score == pytest.approx(vals[best], rel=1e-6)
    model, header = grukit.load(run / "model.safetensors", return_header=True)
    assert isinstance(model, grukit.GRU) and header["task"] == "toy"
    x, y = toy_data()
    assert _val_loss(model, x[72:], y[72:]) == pytest.approx(vals[best], rel=1e-5)
    assert resolve_checkpoint(run) == run / "model.safetensors"


def test_early_stopping_stops_before_max_epochs(tmp_path):
    # lr=0 never improves val_loss after the first epoch → stops after 1 + patience epochs
    res = fit(
        toy_module(lr=0.0),
        *toy_loaders(),
        task="toy",
        output_dir=tmp_path,
        epochs=10,
        patience=2,
        progress=False,
        plot=False,
    )
    assert res.stopped_early and len(res.history) == 3


def test_run_dir_naming_guard_and_metrics(tmp_path):
    a = RunDir.create("forecast", root=tmp_path)
    b = RunDir.create("forecast", root=tmp_path)
    assert a.path != b.path and a.path.name.startswith("forecast-") and b.path.is_dir()
    c = RunDir.create("x", output_dir=tmp_path / "c")
    with pytest.raises(RuntimeError):
        with c.guard():
            (c.path / "partial.csv").write_text("1")
            raise RuntimeError("boom")
    assert not c.path.exists()
    rec = metrics_record(
        "forecast",
        "weather",
        "backtest",
        {"mae": 1.0},
        {"naive": {"mae": float("nan")}},
        seed=0,
        wall_time_s=1.23456,
        command="grukit forecast",
    )
    assert set(rec) >= {
        "task",
        "dataset",
        "split",
        "model",
        "baselines",
        "seed",
        "wall_time_s",
        "command",
        "grukit_version",
    }
    path = a.write_metrics(
        **{
            k: rec[k]
            for k in (
                "task",
                "dataset",
                "split",
                "model",
                "baselines",
                "seed",
                "wall_time_s",
                "command",
            )
        }
    )
    back = json.loads(path.read_text())
    assert back["baselines"]["naive"]["mae"] is None and back["wall_time_s"] == 1.235


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserInputError, match="--resume"):
        fit(toy_module(), *toy_loaders(), resume=tmp_path / "nowhere", progress=False)
    with pytest.raises(UserInputError, match="--epochs"):
        fit(toy_module(), *toy_loaders(), epochs=0, progress=False)
    with pytest.raises(UserInputError, match="--checkpoint"):
        resolve_checkpoint(tmp_path)
    assert (
        parse_devices("2") == 2
        and parse_devices("0,1") == [0, 1]
        and parse_devices("auto") == "auto"
    )
    with pytest.raises(UserInputError, match="--devices"):
        parse_devices("two")
