"""What ``grukit forecast`` does with awkward tables: each case exits 0 with the right answer, or exits 2 with
one line on stderr and no files."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from support import files_under, one_line_error

from grukit.errors import UserInputError
from grukit.tasks.forecast import data as D
from grukit.tasks.forecast import evaluate as E
from grukit.tasks.forecast.ensemble import read_manifest

FAST = ["--epochs", 1, "--hidden", 4]


def _days(n=120, start="2020-01-01"):
    t = pd.date_range(start, periods=n, freq="D")
    return pd.DataFrame({"date": t.strftime("%Y-%m-%d"), "y": 5 + np.sin(np.arange(n) / 3.0)})


def _write(path, df):
    df.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------ ids as written
def test_ids_are_read_as_written_and_only_the_id_column_skips_na_parsing(tmp_path):
    ids = ["00501", "NA", "001", "1", "1.0"]
    df = pd.concat([_days(30).assign(id=i) for i in ids], ignore_index=True)
    df["y"] = df["y"].astype(object)
    df.loc[3, "y"] = ""  # an empty target cell stays missing
    df.loc[4, "y"] = "NA"  # and so does a written NA in another column
    src = _write(tmp_path / "ids.csv", df)
    got = D.read_table(src, id_col="id")
    assert list(pd.unique(got["id"])) == ids
    assert got["y"].isna().sum() == 2 and got["y"].dtype == np.float64
    series = D.to_series(got, D.make_spec(got, "date", "y", id_col="id"))
    assert [s.id for s in series] == ids  # five series: none merged, none named nan


@pytest.mark.slow
def test_cli_keeps_ids_as_written_in_its_files(tmp_path, cli):
    ids = ["00501", "NA", "001", "1"]
    df = pd.concat([_days(40).assign(id=i) for i in ids], ignore_index=True)
    src = _write(tmp_path / "ids.csv", df)
    r = cli(
        "forecast", "--data", src, "--id-col", "id", "--target", "y", "--horizon", 3,
        "--backtest", 1, *FAST, "--baselines", "none", "--output-dir", tmp_path / "run",
    )  # fmt: skip
    assert r.code == 0, r.err
    for name in ("backtest.csv", "forecast.csv"):
        got = pd.read_csv(tmp_path / "run" / name, dtype={"series": str}, keep_default_na=False)
        assert sorted(set(got["series"])) == sorted(ids), name


def test_parquet_is_read_with_the_same_ids(tmp_path):
    pytest.importorskip("pyarrow")
    df = pd.concat([_days(20).assign(id=i) for i in ["007", "7"]], ignore_index=True)
    df.to_parquet(tmp_path / "d.parquet")
    got = D.read_table(tmp_path / "d.parquet", id_col="id")
    assert sorted(set(got["id"])) == ["007", "7"] and len(got) == 40


# ------------------------------------------------------------------------------ timestamps
def test_mixed_utc_offsets_become_utc_with_one_note():
    cells = ["2024-03-30T12:00:00+01:00", "2024-03-31T12:00:00+02:00", "2024-04-01T12:00:00+02:00"]
    with pytest.warns(D.UTCConvertedWarning, match="converted to UTC") as rec:
        t = D._parse_times(pd.Series(cells), "t", note=True)
    assert len(rec) == 1
    assert list(t) == list(
        pd.to_datetime(["2024-03-30 11:00", "2024-03-31 10:00", "2024-04-01 10:00"])
    )


@pytest.mark.slow
def test_cli_on_a_file_spanning_a_daylight_saving_change(tmp_path, cli):
    utc = pd.date_range("2024-03-25", periods=24 * 12, freq="h", tz="UTC")
    local = utc.tz_convert("Europe/Berlin")  # +01:00, then +02:00 from 31 March
    cells = [t.isoformat() for t in local]
    y = 10 + np.sin(2 * np.pi * np.arange(len(utc)) / 24)
    src = _write(tmp_path / "dst.csv", pd.DataFrame({"time": cells, "load": y}))
    r = cli(
        "forecast", "--data", src, "--time-col", "time", "--target", "load", "--horizon", 6,
        "--backtest", 1, *FAST, "--baselines", "naive", "--output-dir", tmp_path / "run",
    )  # fmt: skip
    assert r.code == 0, r.err
    notes = [line for line in r.err_lines if "converted to UTC" in line]
    assert len(notes) == 1, r.err
    fc = pd.read_csv(tmp_path / "run" / "forecast.csv", parse_dates=["time"])
    want = pd.date_range(utc[-1].tz_localize(None), periods=7, freq="h")[1:]
    assert list(fc["time"]) == list(want)  # the hours after the last one, in UTC


def test_day_first_dates_are_detected():
    days = pd.date_range("2024-01-01", periods=40, freq="D")
    df = pd.DataFrame({"date": days.strftime("%d/%m/%Y"), "y": np.arange(40.0) + 1})
    spec = D.make_spec(df, "date", "y")
    assert spec.freq == "D"
    (s,) = D.to_series(df, spec)
    assert list(s.times) == list(days)


def test_ambiguous_day_first_dates_are_refused_naming_date_format(tmp_path, cli):
    months = [
        f"01/{m:02d}/2024" for m in range(1, 13)
    ]  # 1 January .. 1 December, written day first
    src = _write(tmp_path / "m.csv", pd.DataFrame({"date": months, "y": np.arange(12.0)}))
    r = cli("forecast", "--data", src, "--output-dir", tmp_path / "out")
    one_line_error(r, "--date-format '%d/%m/%Y'", "'%m/%d/%Y'")
    assert files_under(tmp_path / "out") == []
    spec = D.make_spec(pd.read_csv(src), "date", "y", date_format="%d/%m/%Y")
    assert spec.freq == "MS"  # with the format given, twelve months


# ------------------------------------------------------------------------------ missing steps
def test_gaps_are_masked_for_the_model_and_interpolated_for_the_baselines():
    df = _days(60).drop(index=[20, 21, 22])
    spec = D.make_spec(df, "date", "y", freq="D", scaling="window")
    with pytest.warns(D.GapFilledWarning, match="3 of 60 steps"):
        (s,) = D.to_series(df, spec)
    w = D.Panel([s], spec, 8, 4).windows([0, 0], [19, 26])
    assert w["tmask"][0].tolist() == [1, 0, 0, 0]  # targets 19..22: 20, 21, 22 missing
    assert w["observed"][1].tolist() == [1, 1, 0, 0, 0, 1, 1, 1]  # context 18..25
    assert w["past"][1, 2:5, 0].tolist() == [0, 0, 0]  # the model never sees the filled values


@pytest.mark.slow
def test_cli_with_gaps_scores_only_the_observed_actuals(tmp_path, cli):
    df = _days(120).drop(index=list(range(100, 104)) + [110])  # 5 missing steps inside the backtest
    src = _write(tmp_path / "gaps.csv", df)
    r = cli(
        "forecast", "--data", src, "--target", "y", "--horizon", 7, "--backtest", 3, *FAST,
        "--baselines", "naive", "--output-dir", tmp_path / "run",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "5 of 21 backtest actuals are missing" in r.out
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["actuals_missing"] == 5 and m["steps_scored"] == 16
    bt = pd.read_csv(tmp_path / "run" / "backtest.csv")
    seen = bt.dropna(subset=["actual"])
    assert len(seen) == 16
    mae = np.mean(np.abs(seen["actual"] - seen["gru_q50"]))
    assert m["model"]["mae"] == pytest.approx(mae, rel=1e-4)  # the CSV holds 6 significant digits


# ------------------------------------------------------------------------------ sizes
@pytest.mark.parametrize(
    "extra,needles",
    [
        (["--context", 10000], ["--context 10000", "longest series (120 points)"]),
        (["--context", 200000], ["--context 200000", "(120 points)"]),
        (["--season-length", 100000], ["--season-length 100000", "(120 points)"]),
        (["--hidden", 300000], ["GiB", "lower --context, --hidden"]),
    ],
)
def test_sizes_beyond_the_data_or_the_memory_are_refused(extra, needles, tmp_path, cli):
    src = _write(tmp_path / "d.csv", _days(120))
    r = cli("forecast", "--data", src, *extra, "--output-dir", tmp_path / "out")
    one_line_error(r, *needles)
    assert files_under(tmp_path / "out") == []


# ------------------------------------------------------------------------------ not a table
@pytest.mark.parametrize("kind", ["folder", "devnull", "nul", "empty"])
def test_data_that_is_not_a_table_is_refused_by_what_it_is(kind, tmp_path, cli):
    if kind == "folder":
        path, what = tmp_path, "is a folder"
    elif kind == "devnull":
        path, what = "/dev/null", "not a regular file"
    elif kind == "nul":
        path, what = tmp_path / "zeros.csv", "only NUL bytes"
        path.write_bytes(b"\x00" * 4096)
    else:
        path, what = tmp_path / "e.csv", "the file is empty"
        path.write_bytes(b"")
    r = cli("forecast", "--data", path, "--output-dir", tmp_path / "out")
    one_line_error(r, "--data", what)
    assert files_under(tmp_path / "out") == []


# ------------------------------------------------------------------------------ the results table
def test_a_forecaster_that_covered_fewer_steps_is_marked_and_never_starred():
    from rich.console import Console

    rows = {
        "gru": {"mae": 2.0, "smape": 10.0},
        "naive": {"mae": 3.0, "smape": 12.0},
        "snaive": {"mae": 0.5, "smape": 1.0},  # better, but over fewer steps
    }
    console = Console(width=200, record=True)
    console.print(
        E.render_table(rows, "t", notes=["snaive forecast only 3 of 21"], partial={"snaive"})
    )
    text = console.export_text()
    line = next(x for x in text.splitlines() if "snaive" in x and "partial" in x)
    assert "★" not in line
    assert "★" in next(x for x in text.splitlines() if "gru" in x)
    assert "snaive forecast only 3 of 21" in text


@pytest.mark.slow
def test_metrics_use_the_steps_every_compared_forecaster_covered(tmp_path, monkeypatch):
    """A baseline without forecasts for some steps is scored on its own steps and reported as partial;
    the others are scored on the same steps (none dropped for it)."""
    from grukit.tasks.forecast import report as R

    real = E.statsforecast_baselines

    def holes(hists, h, m, names, quantiles):
        out = real(hists, h, m, names, quantiles=quantiles)
        if list(names) == ["naive", "snaive"]:  # the baselines' call, not model selection's
            out["snaive"][0, :3] = np.nan  # the first origin's first 3 steps: no forecast
        return out

    monkeypatch.setattr(E, "statsforecast_baselines", holes)
    res = R.backtest_run(
        _days(120), "y", "date", horizon=7, backtest=3, epochs=1, hidden=4,
        baselines=["naive", "snaive"], output_dir=tmp_path / "run",
    )  # fmt: skip
    m = res.metrics
    assert m["partial_forecasters"] == {"snaive": {"steps": 18, "of": 21}}
    assert m["steps_scored"] == 21
    bt = res.backtest
    mae = lambda col: float(np.mean(np.abs(bt["actual"] - bt[col])))  # noqa: E731
    assert m["model"]["mae"] == pytest.approx(mae("gru_q50"))
    assert m["baselines"]["naive"]["mae"] == pytest.approx(mae("naive"))
    assert m["baselines"]["snaive"]["mae"] == pytest.approx(
        float(np.nanmean(np.abs(bt["actual"] - bt["snaive"])))
    )
    assert not math.isnan(m["baselines"]["snaive"]["mae"])


def test_no_baseline_forecast_is_nan_not_zero():
    out = E.statsforecast_baselines([], 3, 1, ["naive"])
    assert out["naive"].shape == (0, 3, 3)
    assert math.isnan(E.point_metrics(np.zeros(0), np.zeros((0, 3)), 1.0)["smape"])


def test_a_broken_ensemble_manifest_is_refused_in_one_line(tmp_path):
    for text in ("[1, 2]", '{"members": []}', '{"members": [3]}', "not json"):
        (tmp_path / "ensemble.json").write_text(text)
        with pytest.raises(UserInputError, match="not a valid ensemble manifest"):
            read_manifest(tmp_path)
