"""CSV handling: the shared time-series files, gap filling, bad input, windows without leakage."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grukit.errors import UserInputError
from grukit.tasks.forecast import data as D

SHARED = Path(os.environ.get("GRUKIT_DATA", "")) / "timeseries"


def _shared(name):
    p = SHARED / name
    if not p.is_file():
        pytest.fail(f"shared data file missing: {p} (set GRUKIT_DATA)")
    return pd.read_csv(p)


def test_builtin_datasets():
    w = D.load_builtin("weather")
    assert len(w) == 1461 and list(w.columns) == [
        "date",
        "precipitation",
        "temp_max",
        "temp_min",
        "wind",
        "weather",
    ]
    s = D.load_builtin("stocks")
    assert sorted(s["symbol"].unique()) == ["AAPL", "AMZN", "GOOG", "IBM", "MSFT"]
    spec = D.make_spec(s, "date", "price", id_col="symbol", log=True)
    assert spec.freq == "MS" and spec.season_length == 12
    lengths = {x.id: len(x) for x in D.to_series(s, spec)}
    assert lengths == {"AAPL": 123, "AMZN": 123, "IBM": 123, "MSFT": 123, "GOOG": 68}


def test_daily_min_temperatures_two_gaps_filled_by_time_interpolation():
    df = _shared("daily-min-temperatures.csv")
    spec = D.make_spec(df, "Date", "Temp")
    assert spec.freq == "D" and spec.season_length == 7
    with pytest.warns(D.GapFilledWarning, match="2 of 3652 steps"):
        (s,) = D.to_series(df, spec)
    assert len(s) == 3652 and s.filled == 2  # 10 years of days, the file has 3650 rows
    # the filled days (31 Dec 1984 and 1988) lie midway between their neighbours (time interpolation)
    known = dict(zip(pd.to_datetime(df["Date"]), df["Temp"]))
    for day in pd.to_datetime(["1984-12-31", "1988-12-31"]):
        assert day not in known
        i = s.times.get_loc(day)
        assert s.y[i] == pytest.approx(
            (known[day - pd.Timedelta(days=1)] + known[day + pd.Timedelta(days=1)]) / 2
        )


@pytest.mark.parametrize(
    "name,col,freq,m",
    [
        ("airline-passengers.csv", "Passengers", "MS", 12),
        ("daily-total-female-births.csv", "Births", "D", 7),
    ],
)
def test_shared_files_frequency_and_season(name, col, freq, m):
    df = _shared(name)
    spec = D.make_spec(df, df.columns[0], col)
    assert (spec.freq, spec.season_length) == (freq, m)
    (s,) = D.to_series(df, spec)
    assert len(s) == len(df) and s.filled == 0


def test_bad_inputs_name_the_problem():
    df = pd.DataFrame(
        {
            "date": pd.date_range("2020-01-01", periods=100).astype(str),
            "y": np.arange(100.0),
            "c": ["a", "b"] * 50,
        }
    )
    with pytest.raises(UserInputError, match="'nope' not found"):
        D.make_spec(df, "date", "nope")
    with pytest.raises(UserInputError, match="--covariates column 'zz'"):
        D.make_spec(df, "date", "y", covariates=["zz"])
    bad = df.assign(y=df["y"].astype(object))
    bad.loc[5, "y"] = "n/a"
    with pytest.raises(UserInputError, match="must be numeric.*'n/a'"):
        D.make_spec(bad, "date", "y")
    with pytest.raises(UserInputError, match="could not parse 'x' \\(data row 1\\)"):
        D.make_spec(df.assign(date=["x"] * 100), "date", "y")
    # the bad cell is named, not the first one
    dates = df["date"].copy()
    dates[41] = "not-a-date"
    with pytest.raises(UserInputError, match="could not parse 'not-a-date' \\(data row 42\\)"):
        D.make_spec(df.assign(date=dates), "date", "y")
    inf = df.assign(y=df["y"].astype(object))
    inf.loc[9, "y"] = "inf"
    with pytest.raises(UserInputError, match="infinite value .* data row 10"):
        D.make_spec(inf, "date", "y")
    with pytest.raises(UserInputError, match="infinite"):
        D.make_spec(df.assign(y=np.where(np.arange(100) == 3, -np.inf, df["y"])), "date", "y")
    gappy = df.drop(index=range(10, 20))  # 10 of 100 days missing: kept as gaps, masked
    spec = D.make_spec(gappy, "date", "y", freq="D")
    with pytest.warns(D.GapFilledWarning, match=r"'series': 10 of 100 steps"):
        (s,) = D.to_series(gappy, spec)
    assert len(s) == 100 and s.observed is not None
    assert np.flatnonzero(~s.observed).tolist() == list(range(10, 20))
    # the interpolated copy (for the baselines) is the straight line between the neighbours
    np.testing.assert_allclose(
        s.y[10:20], np.interp(np.arange(10, 20), [9, 20], [df["y"][9], df["y"][20]])
    )
    dup = pd.concat([df, df.iloc[[3]]])
    with pytest.raises(UserInputError, match="appears more than once"):
        D.to_series(dup, D.make_spec(dup, "date", "y", freq="D"))
    with pytest.raises(UserInputError, match="positive"):
        D.make_spec(df, "date", "y", log=True)  # y starts at 0


def test_categorical_one_hot_and_no_future_covariate_leakage():
    df = D.load_builtin("weather").iloc[:200]
    spec = D.make_spec(df, "date", "temp_max", covariates=["wind", "weather"])
    assert spec.categorical_covariates["weather"] == sorted(df["weather"].unique())
    (s,) = D.to_series(df, spec)
    D.fit_scalers([s], spec, {s.id: 150})
    w = D.windows(s, spec, [100, 150], context=14, horizon=7)
    # z, observed flag, wind, one-hot weather, 4 calendar features
    assert w["past"].shape == (2, 14, 2 + 1 + len(spec.categorical_covariates["weather"]) + 4)
    assert w["future"].shape == (2, 7, 4) and w["target"].shape == (2, 7)
    # change every covariate and target value from step 150 on: the inputs at origin 150 must not move
    df2 = df.copy()
    df2.loc[150:, "wind"] = 99.0
    df2.loc[150:, "weather"] = "snow"
    df2.loc[150:, "temp_max"] = -40.0
    (s2,) = D.to_series(df2, spec)
    w2 = D.windows(s2, spec, [150], context=14, horizon=7, with_target=False)
    np.testing.assert_array_equal(w2["past"][0], w["past"][1])
    np.testing.assert_array_equal(w2["future"][0], w["future"][1])
    # the one-hot columns are exact indicators of the category at each step
    onehot = w["past"][0, :, 3 : 3 + 5]
    cats = df["weather"].iloc[86:100].to_numpy()
    expected = np.array(
        [[c == k for k in spec.categorical_covariates["weather"]] for c in cats], dtype=np.float32
    )
    np.testing.assert_array_equal(onehot, expected)


def test_integer_time_is_plain_steps_and_date_format():
    df = pd.DataFrame({"t": np.arange(3, 40), "y": np.arange(37.0) + 1})
    spec = D.make_spec(df, "t", "y", log=None)
    assert (spec.freq, spec.season_length, spec.calendar, spec.log) == ("step", 1, [], True)
    (s,) = D.to_series(df, spec)
    assert list(s.times[:3]) == [3, 4, 5] and len(s) == 37
    assert list(D.future_times(s.times[-1], 3, spec.freq)) == [40, 41, 42]
    spec4 = D.make_spec(df, "t", "y", season_length=4)
    assert spec4.season_length == 4 and spec4.calendar == ["season4_sin", "season4_cos"]
    with pytest.raises(UserInputError, match="integer steps"):
        D.make_spec(df, "t", "y", freq="D")
    # shampoo.csv: "1-01" .. "3-12" with --date-format '%y-%m' → monthly from 2001-01
    sh = _shared("shampoo.csv")
    with pytest.raises(UserInputError, match="could not parse '1-01'.*--date-format"):
        D.make_spec(sh, "Month", "Sales")
    spec = D.make_spec(sh, "Month", "Sales", date_format="%y-%m")
    (s,) = D.to_series(sh, spec)
    assert spec.freq == "MS" and len(s) == 36
    assert s.times[0] == pd.Timestamp("2001-01-01") and s.times[-1] == pd.Timestamp("2003-12-01")


def test_trailing_empty_cells_reported_once_and_unseen_categories_warned():
    days = pd.date_range("2020-01-01", periods=120).astype(str)
    df = pd.DataFrame({"date": days, "y": np.arange(120.0), "c": ["a", "b"] * 60})
    spec = D.make_spec(df, "date", "y", covariates=["c"])
    new = df.copy()
    new.loc[118:, "y"] = np.nan  # the last two cells are empty
    new.loc[5, "c"] = "zz"
    with pytest.warns(D.TrailingGapWarning, match="forward-filled") as rec:
        (s,) = D.to_series(new, spec)
    assert [w.category for w in rec].count(D.TrailingGapWarning) == 1
    assert not [w for w in rec if w.category is D.GapFilledWarning]  # not also called interpolation
    assert s.y[-1] == s.y[-2] == 117.0
    assert [w for w in rec if w.category is D.UnseenCategoryWarning and "'zz'" in str(w.message)]


def _panel_spec(**kw):
    base = dict(time_col="t", target="y", freq="step", season_length=4, scaling="window", log=True)
    base.update(kw)
    return D.DataSpec(**base)


def _s(sid, y):
    y = np.asarray(y, dtype=np.float64)
    return D.Series(sid, pd.Index(np.arange(len(y))), y, np.zeros((len(y), 0)))


def test_padding_path_short_series_left_padded_and_masked():
    spec = _panel_spec(seasonal="lag")
    y = np.array([10.0, 20, 40, 80, 160, 320])
    p = D.Panel([_s("a", y)], spec, context=8, horizon=3)
    w = p.windows(
        [0, 0], [3, 6]
    )  # origin 3: 3 observed context points; origin 6: all 6, past the end
    assert w["observed"].tolist()[0] == [0, 0, 0, 0, 0, 1, 1, 1]
    assert w["observed"].tolist()[1] == [0, 0, 1, 1, 1, 1, 1, 1]
    # level = mean of log y over the last m = 4 observed context points (3 at origin 3)
    lvl0 = np.mean(np.log([10, 20, 40]))
    lvl1 = np.mean(np.log([40, 80, 160, 320]))
    np.testing.assert_allclose(w["level"], [lvl0, lvl1], rtol=1e-12)
    np.testing.assert_allclose(w["past"][0, -3:, 0], np.log([10, 20, 40]) - lvl0, rtol=1e-6)
    assert (w["past"][0, :5, :2] == 0).all()  # padding: z = 0 and observed = 0
    np.testing.assert_allclose(w["target"][0], np.log([80, 160, 320]) - lvl0, rtol=1e-6)
    assert w["tmask"].tolist() == [[1, 1, 1], [0, 0, 0]]
    # lag-m inputs: step k's seasonal-naive value is y[o − 4 + k]; at origin 3, step 1's is before the series
    assert w["future"][0, :, 1].tolist() == [0, 1, 1]
    np.testing.assert_allclose(w["future"][0, 1:, 0], np.log([10, 20]) - lvl0, rtol=1e-6)
    np.testing.assert_allclose(w["future"][1, :, 0], np.log([40, 80, 160]) - lvl1, rtol=1e-6)
    assert w["future"][1, :, 1].tolist() == [1, 1, 1]
    # back to the data scale: z = target gives the actual values
    raw = p.to_raw(w["target"][:1, :, None].astype(np.float64), w["level"][:1], w["scale"][:1], [0])
    np.testing.assert_allclose(raw[0, :, 0], [80, 160, 320], rtol=1e-5)


def test_window_scaling_is_level_free():
    rng = np.random.default_rng(1)
    y = np.exp(rng.standard_normal(30).cumsum() * 0.1) * 5
    for log in (True, False):
        spec = _panel_spec(log=log)
        a = D.Panel([_s("a", y)], spec, 12, 4).windows([0, 0], [12, 26])
        b = D.Panel([_s("a", 1000 * y)], spec, 12, 4).windows([0, 0], [12, 26])
        np.testing.assert_allclose(a["past"], b["past"], atol=1e-5)
        np.testing.assert_allclose(a["target"], b["target"], atol=1e-5)
