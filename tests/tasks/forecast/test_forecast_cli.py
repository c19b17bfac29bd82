"""Smoke tests of `grukit forecast` on tiny slices (few epochs), `predict`, and bad-input exits."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
from support import run_cli_subprocess

from grukit.tasks.forecast import data as D

METRIC_KEYS = {"mae", "rmse", "mase", "smape", "coverage_80"}


@pytest.fixture(scope="module")
def tiny_weather(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny-weather.csv"
    D.load_builtin("weather").iloc[:300].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def tiny_run(tiny_weather, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    res = run_cli_subprocess(
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
    assert res.code == 0, res.err[-2000:]
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
    assert set(m["baselines"]) == {"naive", "snaive", "ets", "theta"}
    assert (m["n_series_scored"], m["n_series_skipped"]) == (1, 0)
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
    np.testing.assert_allclose(bt["snaive"], week_before, rtol=1e-6)
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


def test_cli_predict_from_run_matches_run_forecast(tiny_run, tiny_weather, tmp_path, cli):
    out = tmp_path / "pred"
    assert (
        cli(
            "forecast",
            "predict",
            "--checkpoint",
            tiny_run,
            "--csv",
            tiny_weather,
            "--output-dir",
            out,
        ).code
        == 0
    )
    a = pd.read_csv(out / "forecast.csv")
    b = pd.read_csv(tiny_run / "forecast.csv")
    assert list(a["time"]) == list(b["time"])
    np.testing.assert_allclose(a[["q10", "q50", "q90"]], b[["q10", "q50", "q90"]], rtol=1e-5)
    assert (out / "forecast.png").is_file()


def _write(path, df):
    df.to_csv(path, index=False)
    return path


def _days(n=200):
    days = pd.date_range("2020-01-01", periods=n, freq="D")
    return pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "y": np.sin(np.arange(n) / 5.0) + 2})


@pytest.mark.parametrize(
    "case,message",
    [
        ("non_numeric", "must be numeric; found non-numeric value 'oops' in data row 8"),
        ("inf", "infinite value ('inf' in data row 12"),
        ("bad_date", "could not parse 'not-a-date' (data row 31)"),
        ("unknown_column", "'nope' not found"),
        ("time_col_missing", "--time-col 'when' is not a column"),
        ("too_short", "nothing left to train on"),
        ("strict", "fewer than 9 points"),
        ("baselines", "--baselines expects"),
        ("scaling", "--scaling expects"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_no_files(case, message, tmp_path, cli):
    df = _days()
    extra = []
    target = "y"
    if case == "non_numeric":
        df["y"] = df["y"].astype(object)
        df.loc[7, "y"] = "oops"
    elif case == "inf":
        df["y"] = df["y"].astype(object)
        df.loc[11, "y"] = "inf"
    elif case == "bad_date":
        df.loc[30, "date"] = "not-a-date"
    elif case == "unknown_column":
        target = "nope"
    elif case == "time_col_missing":
        extra = ["--time-col", "when"]
    elif case == "too_short":
        df = df.iloc[:40]
        extra = ["--backtest", 6]
    elif case == "strict":  # two series, one of 8 points: skipped by default, refused with --strict
        df = pd.concat([df.assign(id="a"), df.iloc[:8].assign(id="b")])
        extra = ["--id-col", "id", "--backtest", 1, "--strict"]
    elif case == "baselines":
        extra = ["--baselines", "naive,prophet"]
    elif case == "scaling":
        extra = ["--scaling", "minmax"]
    src = _write(tmp_path / "bad.csv", df)
    out = tmp_path / "out"
    res = cli(
        "forecast",
        "--csv",
        src,
        "--target",
        target,
        "--epochs",
        1,
        "--output-dir",
        out,
        *extra,
    )
    err = res.err.strip().splitlines()
    assert res.code == 2
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not out.exists()


def test_cli_resume_refuses_conflicting_data_options(tiny_run, tmp_path, cli):
    before = {p.name: p.stat().st_mtime_ns for p in tiny_run.iterdir()}
    other = _write(tmp_path / "other.csv", _days())
    cases = [
        (["--csv", other, "--target", "y"], "--dataset 'tiny-weather', got 'other'"),
        (["--dataset", "weather"], "--dataset 'tiny-weather', got 'weather'"),
    ]
    for args, message in cases:
        res = cli("forecast", *args, "--resume", tiny_run, "--epochs", 4)
        err = res.err.strip().splitlines()
        assert res.code == 2 and len(err) == 1 and message in err[0], err
    src = pd.read_csv(tiny_run / "backtest.csv")  # the run folder is untouched
    assert len(src) == 14
    assert {p.name: p.stat().st_mtime_ns for p in tiny_run.iterdir()} == before


def test_cli_resume_of_a_file_run_needs_only_the_run_folder(tiny_run, tmp_path, cli):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert json.loads((run / "config.json").read_text())["data_path"].endswith("tiny-weather.csv")
    res = cli("forecast", "--resume", run, "--epochs", 4)  # the data file comes from config.json
    assert res.code == 0, res.err
    assert json.loads((run / "metrics.json").read_text())["dataset"] == "tiny-weather"


def test_cli_resume_conflicting_model_option_refused(tiny_run, tiny_weather, cli):
    res = cli(
        "forecast",
        "--csv",
        tiny_weather,
        "--horizon",
        5,
        "--resume",
        tiny_run,
    )
    err = res.err.strip().splitlines()
    assert res.code == 2 and len(err) == 1 and "--horizon 7, got 5" in err[0], err


def test_cli_predict_reports_trailing_gap_once(tiny_run, tiny_weather, tmp_path, cli):
    df = pd.read_csv(tiny_weather)
    df.loc[len(df) - 2 :, "temp_max"] = np.nan
    src = _write(tmp_path / "new.csv", df)
    res = cli(
        "forecast",
        "predict",
        "--checkpoint",
        tiny_run,
        "--csv",
        src,
        "--output-dir",
        tmp_path / "pred",
    )
    err = res.err.strip().splitlines()
    assert res.code == 0
    assert len(err) == 1 and "forward-filled" in err[0] and "'series': 2" in err[0], err


def test_cli_existing_output_dir_needs_overwrite(tiny_run, tiny_weather, tmp_path, cli):
    """A second run into a folder that holds files is refused before any work; --overwrite replaces it."""
    before = {p.name: p.stat().st_mtime_ns for p in tiny_run.iterdir()}
    args = ["--csv", tiny_weather, "--time-col", "date", "--target", "temp_max", "--epochs", 1]
    res = cli("forecast", *args, "--output-dir", tiny_run)
    err = res.err.strip().splitlines()
    assert res.code == 2 and len(err) == 1 and "--overwrite" in err[0], err
    assert {p.name: p.stat().st_mtime_ns for p in tiny_run.iterdir()} == before
    # predict: the same rule for its own output folder
    out = tmp_path / "pred"
    pred = ["forecast", "predict", "--checkpoint", tiny_run, "--csv", tiny_weather]
    assert cli(*pred, "--output-dir", out).code == 0  # a predict folder
    (out / "forecast.csv").write_text("old\n")
    res = cli(*pred, "--output-dir", out)
    err = res.err.strip().splitlines()
    assert res.code == 2 and len(err) == 1 and "--overwrite" in err[0], err
    assert (out / "forecast.csv").read_text() == "old\n"
    assert cli(*pred, "--output-dir", out, "--overwrite").code == 0
    assert (out / "forecast.csv").read_text().startswith(("time", "id", "series"))


def test_cli_table_is_not_wrapped_when_piped(tiny_run, tiny_weather, tmp_path, cli):
    """stdout is a pipe here (pytest captures it): the printed paths stay on one line."""
    out = tmp_path / ("a-long-folder-name-" * 4) / "pred"
    pred = ["forecast", "predict", "--checkpoint", tiny_run, "--csv", tiny_weather]
    res = cli(*pred, "--output-dir", out)
    assert res.code == 0
    lines = res.out.splitlines()
    assert any(str(out / "forecast.csv") in line for line in lines), lines
