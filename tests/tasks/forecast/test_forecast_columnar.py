"""The columnar data path gives what the one-series-at-a-time path gave (the oracle: the general functions,
kept in the code for gaps and covariates)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from grukit.errors import UserInputError
from grukit.tasks.forecast import data as D
from grukit.tasks.forecast import spec as S


def _panel(kind: str, seed: int = 0, n: int = 7, shuffle: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        T = int(rng.integers(3, 40))
        first = int(rng.integers(0, 30))
        if kind == "step":
            t = np.arange(first, first + T)
        else:
            freq = {"daily": "D", "hourly": "h"}[kind]
            t = pd.date_range(
                pd.Timestamp("2024-01-01") + pd.Timedelta(first, unit=freq.lower()),
                periods=T,
                freq=freq,
            )
        rows.append(pd.DataFrame({"id": f"s{i:02d}", "t": t, "y": rng.uniform(1, 9, T)}))
    df = pd.concat(rows, ignore_index=True)
    if shuffle:
        df = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return df


def _both_paths(df, spec, times):
    """The columnar and the per-series (reference) series of ``df``, each with the warnings it gave."""
    import warnings

    with warnings.catch_warnings(record=True) as got_w:
        warnings.simplefilter("always")
        fast = S._columnar_series(df, spec, times, warn=True)
    with warnings.catch_warnings(record=True) as want_w:
        warnings.simplefilter("always")
        slow = S._to_series_general(df, spec, times)
    return fast, slow, got_w, want_w


def _count_series_made(monkeypatch) -> list[int]:
    """The positions of the Series objects a SeriesList makes from now on (not one already made and
    kept), in order."""
    made: list[int] = []
    one = S.SeriesList._one

    def counted(self, k):
        if k not in self._made:
            made.append(k)
        return one(self, k)

    monkeypatch.setattr(S.SeriesList, "_one", counted)
    return made


@pytest.mark.parametrize("kind", ["step", "daily", "hourly"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_complete_panel_series_equal_the_general_path(kind, shuffle):
    df = _panel(kind, shuffle=shuffle)
    spec = D.make_spec(df, "t", "y", id_col="id", log=None)
    times = S.spec_times(df, spec)
    fast = S._complete_series(df, spec, times)
    assert fast is not None, "a complete panel without covariates takes the columnar path"
    slow = S._to_series_general(df, spec, times)
    assert [s.id for s in fast] == [s.id for s in slow]
    for a, b in zip(fast, slow):
        assert a.times.equals(b.times)
        np.testing.assert_array_equal(a.y, b.y)
        assert a.x.shape == b.x.shape and a.filled == b.filled == 0
        assert a.observed is None and b.observed is None


@pytest.mark.parametrize("kind", ["step", "daily", "hourly"])
@pytest.mark.parametrize("path", ["columnar", "general"])
def test_window_values_and_times_equal_per_series_slices(kind, path):
    # the oracle: each series' own y and np.asarray(times), sliced window by window (the general path's
    # series have no shared column and, for steps, no RangeIndex: the fallbacks are checked too)
    df = _panel(kind, seed=3, n=9)
    spec = D.make_spec(df, "t", "y", id_col="id", log=None)
    times = S.spec_times(df, spec)
    if path == "columnar":
        series = S._complete_series(df, spec, times)
        assert series is not None and S._shared_store(series) is not None
        assert S._grid_starts(series) is not None
    else:
        series = S._to_series_general(df, spec, times)
        assert S._shared_store(series) is None
    series = [s.head(len(s) - 1) if k % 2 else s for k, s in enumerate(series)]  # heads share it
    rng = np.random.default_rng(0)
    sidx = rng.integers(0, len(series), 50)
    width = 3
    lens = np.array([len(s) for s in series])
    start = np.array(
        [rng.integers(0, lens[i] - width + 1) if lens[i] >= width else 0 for i in sidx]
    )
    ok = lens[sidx] >= width
    sidx, start = sidx[ok], start[ok]
    want_y = np.stack([series[i].y[o : o + width] for i, o in zip(sidx, start)])
    want_t = np.stack([np.asarray(series[i].times)[o : o + width] for i, o in zip(sidx, start)])
    np.testing.assert_array_equal(S.window_values(series, sidx, start, width), want_y)
    got_t = S.window_times(series, sidx, start, width)
    assert got_t.dtype == want_t.dtype
    np.testing.assert_array_equal(got_t, want_t)
    # past the end, a regular grid continues: what future_times gives after the last time
    if path == "columnar":
        ends = lens[sidx]
        fut = S.window_times(series, sidx, ends, 2)
        for r, i in enumerate(sidx):
            want = np.asarray(D.future_times(series[i].times[-1], 2, spec.freq))
            np.testing.assert_array_equal(fut[r], want)


@pytest.mark.parametrize("order", ["heads", "reversed", "subset"])
def test_columnar_panel_from_the_shared_column_in_any_order_equals_the_per_series_panel(order):
    # the log gathered from the shared column through run masks (ascending, disjoint runs), or the
    # concatenation when the series are not in the column's order; the oracle: the per-series loop
    from grukit.tasks.forecast import panel as P

    df = _panel("step", seed=4, n=8)
    spec = D.make_spec(df, "t", "y", id_col="id", log=True, scaling="window")
    series = D.to_series(df, spec)
    series = {
        "heads": [s.head(max(1, len(s) - 2)) for s in series],
        "reversed": series[::-1],
        "subset": series[1::3],
    }[order]
    ascending = order != "reversed"
    at = np.array([s.at for s in series])
    assert P._disjoint_ascending(at, np.array([len(s) for s in series])) == ascending
    fast = D.Panel(series, spec, 6, 3)
    slow = D.Panel(series, spec, 6, 3, columnar=False)
    np.testing.assert_array_equal(fast.fy, slow.fy)
    np.testing.assert_array_equal(fast.obs, slow.obs)
    lens = np.array([0, 3, 0, 2, 1])
    starts = np.array([0, 0, 3, 3, 6])
    want = np.zeros(9, bool)
    want[np.concatenate([np.arange(a, a + n) for a, n in zip(starts, lens)])] = True
    np.testing.assert_array_equal(P._runs(starts, lens, 9), want)


def test_gaps_duplicates_and_covariates_leave_the_complete_path():
    df = _panel("step", shuffle=False)
    spec = D.make_spec(df, "t", "y", id_col="id")
    gappy = df.drop(index=[3]).reset_index(drop=True)
    assert S._complete_series(gappy, spec, S.spec_times(gappy, spec)) is None
    dup = pd.concat([df, df.iloc[[5]]], ignore_index=True)
    assert S._complete_series(dup, spec, S.spec_times(dup, spec)) is None
    with pytest.raises(Exception, match="appears more than once"):
        D.to_series(dup, spec)
    cov = df.assign(x=1.0)
    spec_x = D.make_spec(cov, "t", "y", ["x"], id_col="id")
    assert S._complete_series(cov, spec_x, S.spec_times(cov, spec_x)) is None


@pytest.mark.parametrize(
    "kind,scaling,log,season",
    [
        ("step", "series", True, 7),
        ("step", "window", False, 1),
        ("daily", "series", False, None),
        ("hourly", "window", True, None),
    ],
)
def test_columnar_panel_equals_the_per_series_panel(kind, scaling, log, season):
    df = _panel(kind, seed=1)
    spec = D.make_spec(df, "t", "y", id_col="id", log=log, scaling=scaling, season_length=season)
    series = list(D.to_series(df, spec))  # a SeriesList: a list of objects to change one
    series[2] = series[2].head(len(series[2]) - 1)
    series[2].observed = np.arange(len(series[2])) % 4 != 1  # a gap or two
    D.fit_scalers(series[:-1], spec, {s.id: max(2, len(s) - 3) for s in series[:-1]})
    C, H = 9, 4
    fast = D.Panel(series, spec, C, H)
    slow = D.Panel(series, spec, C, H, columnar=False)
    np.testing.assert_array_equal(fast.start, slow.start)
    np.testing.assert_array_equal(fast.length, slow.length)
    np.testing.assert_allclose(fast.fy, slow.fy, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(fast.obs, slow.obs)
    np.testing.assert_allclose(fast.feats, slow.feats, rtol=1e-6, atol=1e-6)
    assert fast.feats.shape[1] == len(spec.calendar)
    sidx = np.repeat(np.arange(len(series)), 2)
    orig = np.stack([np.ones(len(series), np.int64), fast.length]).T.ravel()
    a, b = fast.windows(sidx, orig), slow.windows(sidx, orig)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-6, err_msg=k)


@pytest.mark.parametrize(
    "kind,scaling,log,season",
    [
        ("step", "series", True, 7),
        ("daily", "window", False, None),
        ("hourly", "series", True, None),
    ],
)
def test_series_list_gives_what_its_series_objects_give(kind, scaling, log, season):
    """The columns of a SeriesList (to_series of a complete panel: no object per series) give the
    panel, windows, data-scale forecasts, heads, subsets and window values/times that the same series
    as Series objects give (the per-series reference)."""
    df = _panel(kind, seed=2)
    spec = D.make_spec(df, "t", "y", id_col="id", log=log, scaling=scaling, season_length=season)
    cols = D.to_series(df, spec)
    assert isinstance(cols, S.SeriesList) and not cols._made
    objs = [cols[i] for i in range(len(cols))]  # each made from the columns
    assert objs[3] is cols[3]  # made once
    want = S._to_series_general(df, spec, S.spec_times(df, spec))
    for a, b in zip(objs, want):
        assert a.id == b.id
        np.testing.assert_array_equal(a.y, b.y)
        assert list(a.times) == list(b.times)
    until = {s.id: max(1, len(s) - 5) for s in want}
    D.fit_scalers(cols, spec, until)
    by_obj = dict(spec.scalers)
    spec.scalers.clear()
    D.fit_scalers(want, spec, until)
    assert by_obj.keys() == spec.scalers.keys()
    for k, v in by_obj.items():
        np.testing.assert_allclose(v["y_mean"], spec.scalers[k]["y_mean"], rtol=1e-12)
    cut = np.array([max(2, len(s) - 1 - i % 3) for i, s in enumerate(want)])
    pick = np.array([5, 0, 2, 6])
    for got, ref in (
        (cols, want),
        (D.heads(cols, cut), [s.head(int(k)) for s, k in zip(want, cut)]),
        (D.subset(cols, pick), [want[i] for i in pick]),
        (cols[1:4], want[1:4]),
    ):
        np.testing.assert_array_equal(D.lengths_of(got), [len(s) for s in ref])
        assert D.ids_of(got) == [s.id for s in ref]
        C, H = 9, 4
        fast = D.Panel(got, spec, C, H)
        slow = D.Panel(list(ref), spec, C, H, columnar=False)
        sidx = np.repeat(np.arange(len(ref)), 2)
        orig = np.stack([np.ones(len(ref), np.int64), D.lengths_of(got)]).T.ravel()
        a, b = fast.windows(sidx, orig), slow.windows(sidx, orig)
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-6, err_msg=k)
        zq = np.random.default_rng(0).normal(size=(len(sidx), H, 3))
        np.testing.assert_allclose(
            fast.to_raw(zq, a["level"], a["scale"], sidx),
            slow.to_raw(zq, b["level"], b["scale"], sidx),
            rtol=1e-9,
        )
        o = np.maximum(orig - 2, 0)
        np.testing.assert_array_equal(
            D.window_values(got, sidx, o, 2), D.window_values(list(ref), sidx, o, 2)
        )
        np.testing.assert_array_equal(
            D.window_times(got, sidx, o, 2), D.window_times(list(ref), sidx, o, 2)
        )


def test_ids_read_as_categoricals_give_the_same_series(tmp_path):
    from grukit.tasks.forecast import tables

    df = _panel("step", seed=3).assign(id=lambda d: d["id"].str.replace("s", "00"))
    df.to_csv(tmp_path / "p.csv", index=False)
    df.to_parquet(tmp_path / "p.parquet")
    spec = D.make_spec(df, "t", "y", id_col="id")
    want = S._to_series_general(df, spec, S.spec_times(df, spec))
    for name in ("p.csv", "p.parquet"):
        got_df = tables.read_table(tmp_path / name, id_col="id")
        assert isinstance(got_df["id"].dtype, pd.CategoricalDtype)
        got = D.to_series(got_df, spec)
        assert [s.id for s in got] == [s.id for s in want]  # "0001" stays "0001"
        for a, b in zip(got, want):
            assert a.times.equals(b.times)
            np.testing.assert_allclose(a.y, b.y, rtol=1e-15)


def test_sharded_panel_every_series_read_by_exactly_one_rank(tmp_path):
    from grukit.tasks.forecast import tables

    df = _panel("step", seed=4, n=40)
    tables.write_sharded(df, tmp_path / "ds", "id", buckets=8)
    assert sorted(p.name for p in (tmp_path / "ds").iterdir())[0].startswith("bucket=")
    for world in (1, 2, 3):
        parts = [tables.read_shard(tmp_path / "ds", r, world) for r in range(world)]
        ids = [set(p["id"].astype(str)) for p in parts]
        assert sum(len(i) for i in ids) == len(set().union(*ids)) == df["id"].nunique()
        both = pd.concat(parts).sort_values(["id", "t"]).reset_index(drop=True)
        want = df.sort_values(["id", "t"]).reset_index(drop=True)
        np.testing.assert_array_equal(both["y"], want["y"])
        np.testing.assert_array_equal(both["t"], want["t"])
    # the bucket is a fixed function of the id text (CRC-32), not of the process
    import zlib

    assert tables.bucket_of(["s01"], 8)[0] == zlib.crc32(b"s01") % 8


@pytest.mark.parametrize("log", [True, False])
def test_segment_scalers_equal_the_per_series_statistics(log):
    from grukit.tasks.forecast import panel as P

    df = _panel("step", seed=5, n=9)
    spec = D.make_spec(df, "t", "y", id_col="id", log=log)
    series = D.to_series(df, spec)
    until = {s.id: max(1, len(s) - 2) for s in series}
    D.fit_scalers(series, spec, until)
    for s in series:  # the oracle: NumPy's mean/std of the series alone
        fy = np.log(s.y[: until[s.id]]) if log else s.y[: until[s.id]]
        got = spec.scalers[s.id]
        assert got["y_mean"] == pytest.approx(fy.mean(), rel=1e-12)
        assert got["y_std"] == pytest.approx(max(fy.std(), 1e-8), rel=1e-10)
        ref = P._stats(s, spec, until[s.id])
        assert got.keys() == ref.keys() and got["x_mean"] == ref["x_mean"] == []


def test_conformal_offsets_in_chunks_equal_one_batch():
    import torch

    from grukit.tasks.forecast.ensemble import Ensemble
    from grukit.tasks.forecast.model import ForecastNet
    from grukit.tasks.forecast.train import conformal_offsets

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Ensemble([ForecastNet(3, 2, 8, 4, hidden_size=8).eval()])
    w = {
        "past": rng.normal(size=(50, 8, 3)).astype(np.float32),
        "future": rng.normal(size=(50, 4, 2)).astype(np.float32),
        "target": rng.normal(size=(50, 4)).astype(np.float32),
        "tmask": np.ones((50, 4), np.float32),
    }
    one = conformal_offsets(model, w, chunk=1000)
    np.testing.assert_allclose(conformal_offsets(model, w, chunk=7), one, rtol=1e-5, atol=1e-6)


def _messy_csv(path, ids_as_numbers: bool = False) -> None:
    """A panel CSV as users write them: rows unsorted, empty and "NA"/"nan" target cells, ids with
    leading zeros and an id that reads "NA", numbers written with 17 digits."""
    rng = np.random.default_rng(7)
    names = ["00501", "NA", "7", "s", "b"] if not ids_as_numbers else ["1", "2", "30"]
    lines = []
    for k, sid in enumerate(names):
        for t in range(12):
            y = repr(float(rng.lognormal(1, 1)))
            if (k + t) % 7 == 3:
                y = ["", "NA", "nan"][t % 3]
            lines.append(f"{sid},{t},{y},{t * 0.5!r}")
    rng.shuffle(lines)
    path.write_text("id,t,y,x\n" + "\n".join(lines) + "\n")


@pytest.mark.parametrize("numbers", [False, True])
def test_arrow_csv_reader_gives_the_pandas_table(tmp_path, numbers):
    from grukit.tasks.forecast import tables

    p = tmp_path / "p.csv"
    _messy_csv(p, ids_as_numbers=numbers)
    got = tables._read_csv_arrow(p, "id")
    assert got is not None, "a numeric table with a text id takes the pyarrow reader"
    # the oracle: pandas' reader, floats correctly rounded (pyarrow's are; pandas' default may be 1 ulp off)
    want = tables._read_csv_pandas(p, "id", float_precision="round_trip")
    assert list(got.columns) == list(want.columns)
    assert isinstance(got["id"].dtype, pd.CategoricalDtype)
    assert (
        got["id"].astype(str).tolist() == want["id"].astype(str).tolist()
    )  # "00501", "NA" as text
    for c in ("t", "y", "x"):
        assert got[c].dtype == want[c].dtype, c
        np.testing.assert_array_equal(got[c].to_numpy(), want[c].to_numpy())
    # the same series and the same windows from either table
    spec = D.make_spec(want, "t", "y", id_col="id")
    a, b = D.to_series(got, spec), D.to_series(want, spec)
    assert [s.id for s in a] == [s.id for s in b]
    for s, r in zip(a, b):
        assert s.times.equals(r.times)
        np.testing.assert_array_equal(s.y, r.y)
        np.testing.assert_array_equal(s.observed, r.observed)
    D.fit_scalers(a, spec, {s.id: 8 for s in a})
    sidx, orig = np.arange(len(a)), np.full(len(a), 9)
    wa = D.Panel(a, spec, 6, 3).windows(sidx, orig)
    wb = D.Panel(b, spec, 6, 3).windows(sidx, orig)
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def test_arrow_csv_reader_leaves_other_tables_to_pandas(tmp_path):
    from grukit.tasks.forecast import tables

    cases = {
        "dates.csv": "id,date,y\na,2024-01-01,1\na,2024-01-02,2\n",  # a date column: pandas
        "text.csv": "id,t,y,c\na,1,1,red\na,2,2,blue\n",  # a text covariate
        "ragged.csv": "id,t,y\na,1,1\na,2\n",  # a short row
        "dupes.csv": "id,t,t\na,1,1\n",  # duplicate column names
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert tables._read_csv_arrow(tmp_path / name, "id") is None, name
        got = tables.read_table(tmp_path / name, id_col="id")
        pd.testing.assert_frame_equal(got, tables._read_csv_pandas(tmp_path / name, "id"))
    dup = tmp_path / "dup.csv"  # duplicate timestamps are still refused, naming the series
    dup.write_text("id,t,y\na,1,1\na,2,2\na,2,3\n")
    df = tables.read_table(dup, id_col="id")
    with pytest.raises(Exception, match="'a': timestamp 2 appears more than once"):
        D.to_series(df, D.make_spec(df, "t", "y", id_col="id"))


@pytest.mark.slow
def test_run_files_equal_through_the_pyarrow_and_the_pandas_reader(tmp_path, cli, monkeypatch):
    """The whole `grukit forecast` run: the same backtest.csv and forecast.csv whether the CSV is read
    by pyarrow or (the previous path) by pandas, and from the same table as parquet."""
    from grukit.tasks.forecast import tables

    df = _panel("step", seed=8, n=12).assign(y=lambda d: d["y"].round(3))
    df.to_csv(tmp_path / "p.csv", index=False)
    df.to_parquet(tmp_path / "p.parquet")
    assert tables._read_csv_arrow(tmp_path / "p.csv", "id") is not None  # the CSV takes pyarrow
    args = ["--id-col", "id", "--time-col", "t", "--target", "y", "--horizon", "3",
            "--backtest", "1", "--epochs", "1", "--baselines", "none", "--no-select"]  # fmt: skip
    runs = {}
    for name, data in (("arrow", "p.csv"), ("parquet", "p.parquet"), ("pandas", "p.csv")):
        if name == "pandas":
            monkeypatch.setattr(tables, "_read_csv_arrow", lambda p, id_col: None)
        r = cli("forecast", "--data", tmp_path / data, *args, "--output-dir", tmp_path / name)
        assert r.code == 0, r.err[-2000:]
        runs[name] = tmp_path / name
    for f in ("backtest.csv", "forecast.csv"):
        want = (runs["pandas"] / f).read_bytes()
        assert (runs["arrow"] / f).read_bytes() == want, f
        assert (runs["parquet"] / f).read_bytes() == want, f


@pytest.mark.parametrize("seed", range(6))
def test_categorical_ids_factorize_as_pandas_does(seed):
    # the oracle: pd.factorize (codes in the order of first appearance); categories in another order,
    # unused categories, runs that come back, missing ids (pandas' own path)
    rng = np.random.default_rng(seed)
    vals = rng.choice(list("abcdef"), size=int(rng.integers(1, 40)))
    if seed % 2:  # sorted runs, as a panel file has them
        vals = np.sort(vals)
    cats = list(rng.permutation(list("abcdefxy"))) if seed < 4 else list(dict.fromkeys(vals))
    col = pd.Series(pd.Categorical(vals, categories=cats))
    if seed == 5:
        col.iloc[0] = np.nan
    codes, uniques = S._factorized(col)
    want_codes, want_uniques = pd.factorize(col, use_na_sentinel=False)
    np.testing.assert_array_equal(codes, want_codes)
    assert [str(u) for u in uniques] == [str(u) for u in want_uniques]


@pytest.mark.parametrize("order", ["sorted", "time-shuffled", "ids-shuffled"])
def test_complete_series_from_categorical_ids_equal_the_general_path(order):
    df = _panel("step", seed=5, shuffle=False)
    if order == "time-shuffled":  # ids in runs, times backwards within them
        df = df.sort_values(["id", "t"], ascending=[True, False]).reset_index(drop=True)
    elif order == "ids-shuffled":
        df = df.sample(frac=1.0, random_state=1).reset_index(drop=True)
    cat = df.assign(id=pd.Categorical(df["id"], categories=sorted(df["id"].unique())[::-1]))
    spec = D.make_spec(df, "t", "y", id_col="id", log=None)
    fast = S._complete_series(cat, spec, S.spec_times(cat, spec))
    slow = S._to_series_general(df, spec, S.spec_times(df, spec))
    assert fast is not None
    assert [s.id for s in fast] == [s.id for s in slow]
    for a, b in zip(fast, slow):
        assert a.times.equals(b.times)
        np.testing.assert_array_equal(a.y, b.y)


def test_metrics_kept_in_memory_equal_the_file_read_back(tmp_path):
    # the oracle: write_json's file, read back (what run_forecast returned before)
    import json
    from pathlib import Path

    from grukit.tasks.forecast.report import _as_read
    from grukit.train.run import PlainJSON, metrics_record, write_json

    per = PlainJSON({f"s{i}": {"model": {"mae": 0.5 * i, "mase": None}} for i in range(1500)})
    rec = metrics_record(
        "forecast",
        "p",
        "backtest",
        {"mae": np.float64(1.25), "mase": float("nan")},
        baselines={"naive": {"mae": np.float32(2.5), "smape": float("inf")}},
        seed=0,
        wall_time_s=3.14159,
        quantiles=(0.1, 0.5, 0.9),
        offsets=np.array([0.25, -1.0]).round(6).tolist(),
        path=Path("/tmp/x"),
        per_series=per,
        selection={"source": {"s0": "gru"}, "weights": {}, "on": False},
    )
    want = json.loads(write_json(tmp_path / "metrics.json", rec).read_text())
    got = _as_read(rec)
    assert got == want
    assert list(got) == list(want) and json.dumps(got) == json.dumps(want)


@pytest.mark.slow
def test_run_forecast_metrics_equal_its_metrics_file(tmp_path):
    import json

    from grukit.tasks.forecast.config import build_options
    from grukit.tasks.forecast.report import run_forecast

    df = _panel("step", seed=8, n=6).assign(y=lambda d: d["y"].round(3))
    df.loc[df["id"] == "s01", "y"] = 4.0  # a flat series: its MASE is undefined (null)
    opts = build_options("y", "t", id_col="id", horizon=3, backtest=1, epochs=1)
    opts.baselines, opts.select = ["naive"], False
    res = run_forecast(df, opts, output_dir=tmp_path / "run")
    want = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert res.metrics == want and json.dumps(res.metrics) == json.dumps(want)
    assert want["per_series"]["s01"]["model"]["mase"] is None


def _equal_lengths(n: int = 9, T: int = 20, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.repeat([f"s{i}" for i in range(n)], T),
            "t": np.tile(np.arange(T), n),
            "y": rng.uniform(1, 9, n * T).round(3),
        }
    )


@pytest.mark.parametrize("scaling,log", [("window", True), ("window", False), ("series", True)])
@pytest.mark.parametrize(
    "cut",
    ["whole", "heads", "every-other", "random-subset", "uneven", "reversed-uneven", "far-uneven"],
)
def test_row_panel_equals_the_per_series_panel(scaling, log, cut, monkeypatch):
    # the oracle: the per-series loop (columnar=False). Series of one length have the same flat arrays;
    # nearly equal lengths (rows padded to the longest) give the same windows; "far-uneven" (rows would
    # add over ROW_SLACK) leaves the row path for the flat columnar build, checked the same way
    from grukit.tasks.forecast import panel as P

    df = _equal_lengths()
    spec = D.make_spec(df, "t", "y", id_col="id", log=log, scaling=scaling)
    series = D.to_series(df, spec)
    series = {
        "whole": series,
        "heads": [s.head(13) for s in series],  # evenly spaced runs with gaps between them
        "every-other": [s.head(17) for s in series[::2]],
        "random-subset": [series[i].head(15) for i in (7, 2, 3, 8, 0)],  # rows gathered
        "uneven": [s.head(13 + i % 2) for i, s in enumerate(series)],
        "reversed-uneven": [s.head(18 + i % 3) for i, s in enumerate(series)][::-1],
        "far-uneven": [s.head(2 if i % 2 else 20) for i, s in enumerate(series)],
    }[cut]
    D.fit_scalers(series, spec, {s.id: len(s) - 1 for s in series})
    taken = []
    rows = P.Panel._build_strided

    def spy(self, T):
        taken.append(rows(self, T))
        return taken[-1]

    monkeypatch.setattr(P.Panel, "_build_strided", spy)
    fast = D.Panel(series, spec, 6, 3)
    monkeypatch.undo()
    assert taken == [cut != "far-uneven"]
    slow = D.Panel(series, spec, 6, 3, columnar=False)
    np.testing.assert_array_equal(fast.length, slow.length)
    if len({len(s) for s in series}) == 1:  # one length: the same flat layout
        for k in ("fy", "obs", "feats", "start"):
            a, b = getattr(fast, k), getattr(slow, k)
            assert a.dtype == b.dtype and a.shape == b.shape, k
            np.testing.assert_array_equal(a, b, err_msg=k)
    sidx = np.concatenate([np.full(int(n), i) for i, n in enumerate(slow.length)])
    orig = np.concatenate([np.arange(1, int(n) + 1) for n in slow.length])  # every origin
    wa, wb = fast.windows(sidx, orig), slow.windows(sidx, orig)
    for k in wa:
        assert wa[k].dtype == wb[k].dtype, k
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


@pytest.mark.parametrize("kind,observed_input", [("daily", True), ("step", True), ("step", False)])
def test_window_past_inputs_equal_the_float64_concatenation(kind, observed_input):
    # the oracle: each window's z, flag and features cut from the panel's flat arrays one by one,
    # concatenated in float64 and cast once (what windows() computed before writing float32 directly)
    df = _panel(kind, seed=6, n=5)
    spec = D.make_spec(df, "t", "y", id_col="id", log=None)
    spec.observed_input = observed_input
    series = D.to_series(df, spec)
    C, H = 5, 2
    panel = D.Panel(series, spec, C, H)
    sidx = np.repeat(np.arange(len(series)), 2)
    orig = np.stack([np.ones(len(series), np.int64), panel.length]).T.ravel()
    w = panel.windows(sidx, orig)
    assert w["past"].dtype == np.float32
    for r, (i, o) in enumerate(zip(sidx, orig)):
        at = slice(panel.start[i] + o - C, panel.start[i] + o)
        ctx, cm = panel.fy[at], panel.obs[at]
        z = (ctx - w["level"][r]) / w["scale"][r] * cm
        cols = [z[:, None], *([cm[:, None]] if observed_input else []), panel.feats[at]]
        want = np.concatenate(cols, axis=-1).astype(np.float32)
        np.testing.assert_array_equal(w["past"][r], want)
    assert w["past"].shape[-1] == (2 if observed_input else 1) + len(spec.calendar)


@pytest.mark.slow
def test_a_run_of_a_complete_panel_makes_no_object_per_series(cli, tmp_path, monkeypatch):
    """`grukit forecast --no-select` on a complete panel reads the SeriesList's columns: the only Series
    objects made are the plot's (at most 6), however many series the panel has."""
    n = 60
    t = np.tile(np.arange(40), n)
    i = np.repeat(np.arange(n), 40)
    y = 5 + (i % 3) + np.sin(t / 3.0) + np.random.default_rng(0).uniform(0, 0.1, len(t))
    pd.DataFrame({"id": [f"s{k}" for k in i], "t": t, "y": y}).to_csv(
        tmp_path / "p.csv", index=False
    )
    made = _count_series_made(monkeypatch)
    r = cli(
        "forecast", "--data", tmp_path / "p.csv", "--id-col", "id", "--time-col", "t",
        "--target", "y", "--horizon", "5", "--backtest", "2", "--epochs", "1",
        "--baselines", "none", "--no-select", "--output-dir", tmp_path / "run",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert 0 < len(made) <= 6 and set(made) <= set(range(6)), made
    assert len(pd.read_csv(tmp_path / "run" / "forecast.csv")) == n * 5


#: steps without a fixed length (calendar grids): kind -> pandas frequency
_CALENDAR = {
    "monthly": "MS",
    "month-end": "ME",
    "quarterly": "QE-DEC",
    "yearly": "YS",
    "weekly": "W-SUN",
}


def _calendar_dates(kind: str, first: int, T: int) -> pd.DatetimeIndex:
    """``T`` stamps of a calendar grid, starting ``first`` (−5 .. 30) steps after the grid's start."""
    return pd.date_range("1990-01-01", periods=first + 5 + T, freq=_CALENDAR[kind])[first + 5 :]


def _gapped(kind: str, seed: int, n: int = 25) -> pd.DataFrame:
    """A ragged, shuffled panel with missing rows and empty target cells (leading, inner, trailing)."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n):
        T = int(rng.integers(1, 40))
        first = int(rng.integers(-5, 30))
        if kind == "step":
            t: object = np.arange(first, first + T)
        elif kind in _CALENDAR:
            t = _calendar_dates(kind, first, T)
        else:
            f = {"daily": "D", "hourly": "h"}[kind]
            t = pd.date_range(
                pd.Timestamp("2024-01-01") + pd.Timedelta(first, unit=f.lower()), periods=T, freq=f
            )
        y = rng.uniform(1, 9, T) * 10.0 ** int(rng.integers(-3, 4))
        part = pd.DataFrame({"id": f"s{i:02d}", "t": t, "y": y})
        keep = rng.uniform(size=T) > rng.uniform(0, 0.5)
        keep[0] = keep[-1] = True
        part = part[keep].copy()
        part.loc[rng.uniform(size=len(part)) < 0.2, "y"] = np.nan
        if part["y"].isna().all():
            part.iloc[0, 2] = 1.0
        parts.append(part)
    df = pd.concat(parts, ignore_index=True)
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _messages(record) -> list[tuple[type, str]]:
    return [(w.category, str(w.message)) for w in record]


@pytest.mark.parametrize("kind", ["step", "daily", "hourly", *_CALENDAR])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gapped_panel_series_equal_the_general_path(kind, seed):
    """Gaps filled over the whole column (positions scattered, np.interp's formula vectorised) give the
    per-series path's series bit for bit: times, filled values, observed masks, filled counts, warnings."""

    df = _gapped(kind, seed)
    spec = D.make_spec(df, "t", "y", id_col="id", log=None)
    times = S.spec_times(df, spec)
    fast, slow, got_w, want_w = _both_paths(df, spec, times)
    assert isinstance(fast, S.SeriesList) and fast.has_gaps() and D.has_gaps(slow)
    assert _messages(got_w) == _messages(want_w) and len(want_w) >= 1
    assert [s.id for s in fast] == [s.id for s in slow]
    for a, b in zip(fast, slow):
        assert a.times.equals(b.times) and getattr(a.times, "freq", 0) == getattr(
            b.times, "freq", 0
        )
        np.testing.assert_array_equal(a.y, b.y)
        assert a.filled == b.filled
        assert (a.observed is None) == (b.observed is None)
        if b.observed is not None:
            np.testing.assert_array_equal(a.observed, b.observed)
    assert S._complete_series(df, spec, times) is None  # the complete-only entry refuses gaps


@pytest.mark.parametrize("kind", ["step", "daily", "monthly", "quarterly"])
@pytest.mark.parametrize("scaling,log", [("window", True), ("series", False)])
def test_gapped_series_list_panel_and_masks_equal_the_per_series_ones(kind, scaling, log):
    """A gapped SeriesList's panel (observed flags from its column), windows, observed windows, heads and
    subsets equal those of the per-series reference's Series objects."""
    df = _gapped(kind, 5, n=12)
    spec = D.make_spec(df, "t", "y", id_col="id", log=log, scaling=scaling)
    cols = D.to_series(df, spec)
    assert isinstance(cols, S.SeriesList) and cols.has_gaps() and not cols._made
    want = S._to_series_general(df, spec, S.spec_times(df, spec))
    D.fit_scalers(want, spec, {s.id: len(s) for s in want})
    cut = np.array([max(1, len(s) - i % 3) for i, s in enumerate(want)])
    pick = np.array([7, 0, 3, 11, 5])
    for got, ref in (
        (cols, want),
        (D.heads(cols, cut), [s.head(int(k)) for s, k in zip(want, cut)]),
        (D.subset(cols, pick), [want[i] for i in pick]),
    ):
        assert D.has_gaps(got) == D.has_gaps(ref)
        lens = D.lengths_of(got)
        np.testing.assert_array_equal(lens, [len(s) for s in ref])
        want_obs = np.concatenate(
            [np.ones(len(s), bool) if s.observed is None else s.observed for s in ref]
        )
        np.testing.assert_array_equal(D.flat_observed(got), want_obs)
        C, H = 6, 3
        fast = D.Panel(got, spec, C, H)
        slow = D.Panel(list(ref), spec, C, H, columnar=False)
        np.testing.assert_array_equal(fast.obs, slow.obs)
        np.testing.assert_allclose(fast.fy, slow.fy, rtol=1e-12, atol=1e-12)
        sidx = np.repeat(np.arange(len(ref)), 2)
        orig = np.stack([np.ones(len(ref), np.int64), lens]).T.ravel()
        a, b = fast.windows(sidx, orig), slow.windows(sidx, orig)
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-6, err_msg=k)
        ok = lens[sidx] >= 2
        o = np.minimum(np.maximum(orig - 2, 0), np.maximum(lens[sidx] - 2, 0))[ok]
        s_ok = sidx[ok]
        manual = np.stack(
            [
                np.ones(2, bool) if ref[i].observed is None else ref[i].observed[k : k + 2]
                for i, k in zip(s_ok.tolist(), o.tolist())
            ]
        )
        np.testing.assert_array_equal(D.observed_windows(got, s_ok, o, 2), manual)
        np.testing.assert_array_equal(D.observed_windows(list(ref), s_ok, o, 2), manual)
        for i in range(len(ref)):
            assert got[i].filled == ref[i].filled
            assert (got[i].observed is None) == (ref[i].observed is None)


def test_gapped_panel_errors_come_from_the_general_path():
    df = _gapped("step", 0, n=5)
    spec = D.make_spec(df, "t", "y", id_col="id")
    empty = pd.concat([df, pd.DataFrame({"id": ["zz", "zz"], "t": [0, 2], "y": [np.nan] * 2})])
    assert S._columnar_series(empty, spec, S.spec_times(empty, spec)) is None
    with pytest.raises(Exception, match="has no 'y' value"):
        D.to_series(empty, spec)
    dup = pd.concat([df, df.iloc[[3]]], ignore_index=True)
    with pytest.raises(Exception, match="appears more than once"):
        D.to_series(dup, spec)
    days = _gapped("daily", 0, n=5)
    spec_d = D.make_spec(days, "t", "y", id_col="id", freq="D")
    off = days.copy()
    off.loc[0, "t"] = off.loc[0, "t"] + pd.Timedelta(hours=5)
    assert S._columnar_series(off, spec_d, S.spec_times(off, spec_d)) is None
    with pytest.raises(Exception, match="is not on the 'D' grid"):
        D.to_series(off, spec_d)


@pytest.mark.parametrize("kind", list(_CALENDAR))
def test_calendar_panel_is_columnar_with_the_per_series_times(kind):
    """A panel on a calendar grid (months, quarters, years, anchored weeks) comes back as a SeriesList
    without a Series object made, and its window times, times with the forecast steps and future stamps
    are what each series' own times give (pd.date_range from its stamps)."""
    from grukit.tasks.forecast.estimator import _future_stamps
    from grukit.tasks.forecast.panel import _times_with_future

    df = _gapped(kind, 3, n=9)
    spec = D.make_spec(df, "t", "y", id_col="id")
    cols = D.to_series(df, spec)
    assert isinstance(cols, S.SeriesList) and cols.calendar is not None and not cols._made
    ref = S._to_series_general(df, spec, S.spec_times(df, spec))
    H = 4
    sidx = np.arange(len(ref))
    lens = D.lengths_of(cols)
    want = [D.future_times(s.times[-1], H, spec.freq) for s in ref]
    got = S.window_times(S.SeriesList.take(cols, sidx), sidx, lens - 1, H + 1)
    for i, s in enumerate(ref):
        np.testing.assert_array_equal(got[i], np.r_[s.times[-1:], want[i]].astype("M8[ns]"))
    np.testing.assert_array_equal(
        _future_stamps(cols, H, spec.freq), np.concatenate([np.asarray(w) for w in want])
    )
    assert _times_with_future(cols, H, spec.freq).equals(_times_with_future(ref, H, spec.freq))


def test_calendar_panel_off_grid_date_is_refused_by_the_general_path():
    df = _gapped("monthly", 0, n=5)
    spec = D.make_spec(df, "t", "y", id_col="id")
    assert spec.freq == "MS"
    off = df.copy()
    off.loc[2, "t"] = off.loc[2, "t"] + pd.Timedelta(days=3)
    assert S._columnar_series(off, spec, S.spec_times(off, spec)) is None
    with pytest.raises(UserInputError, match="is not on the 'MS' grid starting"):
        D.to_series(off, spec)


@pytest.mark.slow
@pytest.mark.parametrize("covariates,monthly", [(False, False), (True, False), (True, True)])
def test_a_run_of_a_gapped_panel_makes_no_object_per_series(
    cli, tmp_path, monkeypatch, covariates, monthly
):
    """`grukit forecast --no-select` on a panel with missing rows and empty cells (and future-known and
    static covariates; on integer steps or months) reads the SeriesList's columns (observed flags and
    covariates included): the only Series objects made are the plot's (at most 6)."""
    n = 60
    t = np.tile(np.arange(40), n)
    i = np.repeat(np.arange(n), 40)
    y = 5 + (i % 3) + np.sin(t / 3.0) + np.random.default_rng(0).uniform(0, 0.1, len(t))
    df = pd.DataFrame({"id": [f"s{k}" for k in i], "t": t, "y": y})
    rng = np.random.default_rng(1)
    drop = (rng.uniform(size=len(df)) < 0.05) & (t > 0) & (t < 34)
    df.loc[(rng.uniform(size=len(df)) < 0.03) & (t > 0) & (t < 35), "y"] = np.nan
    flags: list[str] = []
    if covariates:
        df["promo"] = (t % 7 == 3).astype(float)
        df["region"] = np.where(i % 2, "N", "S")
        df.loc[t >= 35, "y"] = np.nan  # the last 5 rows: future-covariate rows
        flags = ["--future-covariates", "promo", "--static-covariates", "region"]
    if monthly:
        df["t"] = pd.date_range("2001-01-01", periods=40, freq="MS")[t].strftime("%Y-%m-%d")
    df[~drop].sample(frac=1.0, random_state=2).to_csv(tmp_path / "p.csv", index=False)
    made = _count_series_made(monkeypatch)
    r = cli(
        "forecast", "--data", tmp_path / "p.csv", "--id-col", "id", "--time-col", "t",
        "--target", "y", "--horizon", "5", "--backtest", "2", "--epochs", "1",
        "--baselines", "none", "--no-select", "--output-dir", tmp_path / "run", *flags,
    )  # fmt: skip
    assert r.code == 0, r.err
    assert 0 < len(made) <= 6 and set(made) <= set(range(6)), made
    assert len(pd.read_csv(tmp_path / "run" / "forecast.csv")) == n * 5


def _covariate_panel(kind: str, seed: int, n: int = 16, future: bool = True) -> pd.DataFrame:
    """A ragged, shuffled panel with gaps, empty covariate cells, future rows (target empty) and
    per-series static values (some cells empty)."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n):
        T, first = int(rng.integers(2, 40)), int(rng.integers(-5, 30))
        F = int(rng.integers(0, 4)) if future else 0
        if kind == "step":
            t: object = np.arange(first, first + T + F)
        elif kind in _CALENDAR:
            t = _calendar_dates(kind, first, T + F)
        else:
            f = {"daily": "D", "hourly": "h"}[kind]
            t = pd.date_range(
                pd.Timestamp("2024-01-01") + pd.Timedelta(first, unit=f.lower()),
                periods=T + F,
                freq=f,
            )
        part = pd.DataFrame(
            {
                "id": f"s{i:02d}",
                "t": t,
                "y": np.r_[rng.uniform(1, 9, T), [np.nan] * F],
                "temp": rng.normal(size=T + F),
                "kind": rng.choice(["a", "b", "c"], T + F),
                "promo": rng.integers(0, 2, T + F).astype(float),
                "hol": rng.choice(["x", "y"], T + F),
                "size": float(i % 3),
                "region": "NS"[i % 2],
            }
        )
        keep = rng.uniform(size=T + F) > rng.uniform(0, 0.4)
        keep[0] = keep[T - 1] = True
        part = part[keep].copy()
        for c in ["temp", "kind", "promo", "hol"]:
            part.loc[rng.uniform(size=len(part)) < 0.15, c] = np.nan
        part.loc[part.index[1:][rng.uniform(size=len(part) - 1) < 0.3], ["size", "region"]] = np.nan
        if i % 5 == 0:
            part["kind"] = np.nan  # a covariate empty in a whole series: 0
        parts.append(part)
    df = pd.concat(parts, ignore_index=True)
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


_COVARIATES = [
    {"covariates": ["temp", "kind"]},
    {"future_covariates": ["promo", "hol"]},
    {"static_covariates": ["size", "region"]},
    {
        "covariates": ["temp"],
        "future_covariates": ["promo", "hol"],
        "static_covariates": ["region", "size"],
    },
]


@pytest.mark.parametrize("kind", ["step", "daily", "hourly", "monthly", "yearly"])
@pytest.mark.parametrize("which", range(len(_COVARIATES)))
def test_covariate_panel_series_equal_the_general_path(kind, which):
    """Covariate columns scattered and filled over the whole array give the per-series path's series bit
    for bit: y, past covariates x, future covariates xf (future rows as given), static, masks, warnings;
    and the covariate scalers and the future-covariate check read the same values from the columns."""

    kw = _COVARIATES[which]
    df = _covariate_panel(kind, which, future="future_covariates" in kw)
    spec = D.make_spec(df, "t", "y", id_col="id", log=None, **kw)
    times = S.spec_times(df, spec)
    fast, slow, got_w, want_w = _both_paths(df, spec, times)
    assert isinstance(fast, S.SeriesList) and fast.covariates is not None and not fast._made
    assert _messages(got_w) == _messages(want_w)
    assert [s.id for s in fast] == [s.id for s in slow]
    for a, b in zip(fast, slow):
        assert a.times.equals(b.times)
        for f in ("y", "x", "xf", "static"):
            va, vb = getattr(a, f), getattr(b, f)
            assert va.shape == vb.shape, f
            np.testing.assert_array_equal(va, vb, err_msg=f)
        assert a.filled == b.filled and (a.observed is None) == (b.observed is None)
        if b.observed is not None:
            np.testing.assert_array_equal(a.observed, b.observed)
    cols = S._columnar_series(df, spec, times)
    for got, ref in ((cols, slow), (D.subset(cols, [3, 0, 5]), [slow[i] for i in (3, 0, 5)])):
        D.fit_covariate_scalers(got, spec)
        by_cols = dict(spec.covariate_scalers)
        D.fit_covariate_scalers(list(ref), spec)
        assert by_cols == spec.covariate_scalers
        for horizon in (1, 3):
            errs = []
            for s in (got, list(ref)):
                try:
                    D.check_future_covariates(s, spec, horizon)
                    errs.append(None)
                except UserInputError as e:  # the two messages are compared
                    errs.append(str(e))
            assert errs[0] == errs[1]
        C, H = 5, 2
        spec.scalers.clear()
        D.fit_scalers(list(ref), spec, {s.id: len(s) for s in ref})
        a, b = D.Panel(got, spec, C, H), D.Panel(list(ref), spec, C, H)
        for k in ("fy", "obs", "feats", "start", "length"):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)


@pytest.mark.parametrize("kind", ["step", "monthly", "quarterly"])
def test_covariate_panel_makes_no_frame_per_series(monkeypatch, kind):
    """to_series of a gapped covariate panel (integer steps or a calendar grid) builds a fixed number of
    pandas frames, whatever the number of series (the per-series path built one or more per series), and
    no Series object."""
    df = _covariate_panel(kind, 9, n=40)
    spec = D.make_spec(
        df, "t", "y", ["temp"], id_col="id", future_covariates=["hol"], static_covariates=["size"]
    )
    made = []
    init = pd.DataFrame.__init__

    def counted(self, *a, **k):
        made.append(1)
        init(self, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "__init__", counted)
    series = D.to_series(df, spec)
    assert isinstance(series, S.SeriesList) and not series._made
    assert len(made) <= 3, len(made)


@pytest.mark.parametrize("kind", ["step", "monthly"])
def test_series_scalers_with_numeric_covariates_read_the_columns(monkeypatch, kind):
    """fit_scalers on a covariate SeriesList (numeric past covariates: statistics per series) gives the
    per-series path's statistics bit for bit, from the columns: no Series object is made."""
    df = _covariate_panel(kind, 4, n=30, future=False)
    spec = D.make_spec(df, "t", "y", id_col="id", covariates=["temp", "kind"], scaling="series")
    cols = D.to_series(df, spec)
    ref = S._to_series_general(df, spec, S.spec_times(df, spec))
    until = {s.id: max(1, len(s) - i % 3) for i, s in enumerate(ref)}
    D.fit_scalers(ref, spec, until)
    want = dict(spec.scalers)
    spec.scalers.clear()
    made = _count_series_made(monkeypatch)
    D.fit_scalers(cols, spec, until)
    assert isinstance(cols, S.SeriesList) and not made
    assert len(want) == 30 and spec.scalers == want
