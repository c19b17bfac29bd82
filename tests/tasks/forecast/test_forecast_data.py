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
    with pytest.warns(D.GapFilledWarning, match="filled 2 missing"):
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
    with pytest.raises(UserInputError, match="could not parse"):
        D.make_spec(df.assign(date=["x"] * 100), "date", "y")
    gappy = df.drop(index=range(10, 20))  # 10 of 100 days missing: 10% > 2%
    spec = D.make_spec(gappy, "date", "y", freq="D")
    with pytest.raises(UserInputError, match=r"10 of 100 timestamps \(10.0%\)"):
        D.to_series(gappy, spec)
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
    assert w["past"].shape == (2, 14, 1 + 1 + len(spec.categorical_covariates["weather"]) + 4)
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
    onehot = w["past"][0, :, 2 : 2 + 5]
    cats = df["weather"].iloc[86:100].to_numpy()
    expected = np.array(
        [[c == k for k in spec.categorical_covariates["weather"]] for c in cats], dtype=np.float32
    )
    np.testing.assert_array_equal(onehot, expected)
