"""Smoke tests of `grukit forecast` on tiny slices (few epochs), `predict`, and bad-input exits."""

import csv
import json
import sys

import numpy as np
import pandas as pd
import pytest

from grukit.cli import main
from grukit.tasks.forecast import data as D

METRIC_KEYS = {"mae", "rmse", "mase", "coverage_80"}


def _cli(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["grukit", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        main()
    return e.value.code


@pytest.fixture(scope="module")
def tiny_weather(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny-weather.csv"
    D.load_builtin("weather").iloc[:300].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def tiny_run(tiny_weather, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    mp = pytest.MonkeyPatch()
    try:
        code = _cli(
            mp,
            "forecast",
            "--csv",
            tiny_weather,
            "--time-col",
            "date",
            "--target",
            "temp_max",
            "--covariates",
            "precipitation,wind,weather",
            "--horizon",
            7,
            "--context",
            14,
            "--backtest",
            2,
            "--epochs",
            3,
            "--hidden",
            16,
            "--output-dir",
            out,
        )
    finally:
        mp.undo()
    assert code in (0, None)
    return out


def test_cli_smoke_files_metrics_and_falling_loss(tiny_run, tiny_weather):
    for name in (
        "model.safetensors",
        "config.json",
        "metrics.json",
        "log.csv",
        "backtest.csv",
        "forecast.csv",
        "forecast.png",
        "loss.png",
        "last.ckpt",
    ):
        assert (tiny_run / name).is_file(), name
    m = json.loads((tiny_run / "metrics.json").read_text())
    assert {
        "task",
        "dataset",
        "split",
        "model",
        "baselines",
        "seed",
        "wall_time_s",
        "command",
        "grukit_version",
    } <= set(m)
    assert m["task"] == "forecast" and m["dataset"] == "tiny-weather"
    assert set(m["model"]) == METRIC_KEYS
    assert set(m["baselines"]) == {"naive", "seasonal_naive", "ets", "arima"}
    for b in m["baselines"].values():
        assert set(b) == METRIC_KEYS
    rows = list(csv.DictReader(open(tiny_run / "log.csv")))
    assert len(rows) == 3 and float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])

    src = pd.read_csv(tiny_weather, parse_dates=["date"]).set_index("date")
    bt = pd.read_csv(tiny_run / "backtest.csv", parse_dates=["time", "origin"])
    assert len(bt) == 2 * 7 and sorted(bt["step"].unique()) == list(range(1, 8))
    # actuals are the file's values at those times; the naive baseline is the value at the origin
    np.testing.assert_allclose(bt["actual"], src.loc[bt["time"], "temp_max"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(bt["naive"], src.loc[bt["origin"], "temp_max"].to_numpy(), rtol=1e-6)
    # seasonal naive (m=7, h ≤ 7): the value one week before each target time
    week_before = src.loc[bt["time"] - pd.Timedelta(days=7), "temp_max"].to_numpy()
    np.testing.assert_allclose(bt["seasonal_naive"], week_before, rtol=1e-6)
    # metrics.json's naive MAE recomputed from backtest.csv
    assert m["baselines"]["naive"]["mae"] == pytest.approx(
        np.mean(np.abs(bt["actual"] - bt["naive"])), rel=1e-5
    )
    assert m["model"]["mae"] == pytest.approx(
        np.mean(np.abs(bt["actual"] - bt["gru_q50"])), rel=1e-5
    )

    fc = pd.read_csv(tiny_run / "forecast.csv", parse_dates=["time"])
    expected_days = pd.date_range(src.index[-1] + pd.Timedelta(days=1), periods=7, freq="D")
    assert list(fc["time"]) == list(expected_days)
    assert (fc["q10"] <= fc["q50"]).all() and (fc["q50"] <= fc["q90"]).all()


def test_cli_predict_from_run_matches_run_forecast(tiny_run, tiny_weather, tmp_path, monkeypatch):
    out = tmp_path / "pred"
    assert _cli(
        monkeypatch,
        "forecast",
        "predict",
        "--checkpoint",
        tiny_run,
        "--csv",
        tiny_weather,
        "--output-dir",
        out,
    ) in (0, None)
    a = pd.read_csv(out / "forecast.csv")
    b = pd.read_csv(tiny_run / "forecast.csv")
    assert list(a["time"]) == list(b["time"])
    np.testing.assert_allclose(a[["q10", "q50", "q90"]], b[["q10", "q50", "q90"]], rtol=1e-5)
    assert (out / "forecast.png").is_file()


def _write(path, df):
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "case,message",
    [
        ("non_numeric", "must be numeric"),
        ("unknown_column", "'nope' not found"),
        ("big_gaps", "at most 2%"),
        ("too_short", "too short"),
    ],
)
def test_cli_bad_csv_exits_2_without_output(case, message, tmp_path, monkeypatch, capsys):
    days = pd.date_range("2020-01-01", periods=200, freq="D")
    df = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "y": np.sin(np.arange(200) / 5.0) + 2})
    target = "y"
    if case == "non_numeric":
        df["y"] = df["y"].astype(object)
        df.loc[7, "y"] = "oops"
    elif case == "unknown_column":
        target = "nope"
    elif case == "big_gaps":
        df = df.drop(index=range(50, 60))
    elif case == "too_short":
        df = df.iloc[:40]
    src = _write(tmp_path / "bad.csv", df)
    out = tmp_path / "out"
    code = _cli(
        monkeypatch,
        "forecast",
        "--csv",
        src,
        "--target",
        target,
        "--epochs",
        1,
        "--output-dir",
        out,
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not out.exists()
