"""Static covariates (`--static-covariates`): one value per series, one-hot categories or standardised
numbers, carried by the model file (vocabulary and statistics) so that `predict` gives the run's forecast."""

import json

import numpy as np
import pandas as pd
import pytest
from safetensors import safe_open
from support import run_cli_subprocess

from grukit.errors import UserInputError
from grukit.tasks.forecast import data as D
from grukit.tasks.forecast import report as R
from grukit.tasks.forecast import train as T

CATS = ["north", "south", "west"]


def _panel(n_series=6, length=60, seed=0) -> pd.DataFrame:
    """Series s0..s5 on integer steps; ``region`` (categorical) and ``size`` (numeric) are static."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n_series):
        t = np.arange(length)
        y = (10 + i) * (1 + 0.3 * np.sin(2 * np.pi * t / 6)) + rng.normal(0, 0.3, length)
        parts.append(
            pd.DataFrame(
                {
                    "id": f"s{i}",
                    "t": t,
                    "y": y,
                    "region": CATS[i % 3],
                    "size": float(10 * (i + 1)),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _spec(df, **kw):
    return D.make_spec(
        df, "t", "y", id_col="id", static_covariates=["region", "size"], scaling="window", **kw
    )


@pytest.fixture(scope="module")
def static_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    src = root / "panel.csv"
    _panel().to_csv(src, index=False)
    out = root / "run"
    res = run_cli_subprocess(
        "forecast",
        "--csv",
        src,
        "--id-col",
        "id",
        "--time-col",
        "t",
        "--target",
        "y",
        "--static-covariates",
        "region,size",
        "--horizon",
        4,
        "--context",
        12,
        "--backtest",
        1,
        "--epochs",
        2,
        "--hidden",
        8,
        "--baselines",
        "none",
        "--no-select",  # the GRU's own forecast: these tests are about its inputs, not the selection
        "--output-dir",
        out,
    )
    assert res.code == 0, res.err[-2000:]
    return src, out


def test_static_covariates_round_trip_through_the_model_file(static_run, tmp_path, cli):
    src, run = static_run
    df = pd.read_csv(src)
    with safe_open(str(run / "model.safetensors"), "pt") as f:
        spec = json.loads(f.metadata()["grukit"])["extra"]["spec"]
    # the vocabulary and the standardisation of the numeric static column, as stored in the file
    assert spec["static_categorical"] == {"region": CATS}
    assert spec["static_numeric"] == ["size"]
    sizes = df.groupby("id")["size"].first().to_numpy()  # one value per series: 10, 20, ..., 60
    assert spec["covariate_scalers"]["static_mean"] == pytest.approx([np.mean(sizes)])
    assert spec["covariate_scalers"]["static_std"] == pytest.approx([np.std(sizes)])
    assert json.loads((run / "config.json").read_text())["static_covariates"] == ["region", "size"]

    # the loaded model and spec give the run's forecast exactly (Python API, no CSV rounding)
    model, loaded = T.load_forecaster(run)
    assert loaded.static_categorical == {"region": CATS}
    assert model.config.past_features == 2 + len(CATS) + 1  # z, observed, one-hot region, size
    fc = R.predict_table(run, df)
    ref = pd.read_csv(run / "forecast.csv")
    assert list(fc["series"]) == list(ref["series"])
    np.testing.assert_allclose(fc[["q10", "q50", "q90"]], ref[["q10", "q50", "q90"]], rtol=1e-5)
    # a second load forecasts bit for bit the same
    pd.testing.assert_frame_equal(fc, R.predict_table(run / "model.safetensors", df))

    out = tmp_path / "pred"
    res = cli("forecast", "predict", "--checkpoint", run, "--csv", src, "--output-dir", out)
    assert res.code == 0
    got = pd.read_csv(out / "forecast.csv")
    np.testing.assert_allclose(got[["q10", "q50", "q90"]], ref[["q10", "q50", "q90"]], rtol=1e-5)


def test_static_values_reach_the_model(static_run):
    src, run = static_run
    df = pd.read_csv(src)
    base = R.predict_table(run, df)
    other = R.predict_table(
        run, df.assign(region=np.where(df["id"] == "s0", "south", df["region"]))
    )
    moved = base["series"] == "s0"
    assert not np.allclose(base.loc[moved, "q50"], other.loc[moved, "q50"])
    np.testing.assert_array_equal(base.loc[~moved, "q50"], other.loc[~moved, "q50"])


def test_static_window_inputs_are_the_one_hot_and_standardised_values():
    df = _panel()
    spec = _spec(df)
    series = D.to_series(df, spec)
    D.fit_covariate_scalers(series, spec)
    panel = D.Panel(series, spec, context=5, horizon=3)
    w = panel.windows([2, 4], [3, 40])  # s2 (west) with left padding, s4 (south)
    names = D.past_feature_names(spec)
    assert names == ["z", "observed", "static:size", *(f"static:region={c}" for c in CATS)]
    sizes = 10.0 * np.arange(1, 7)
    for k, (i, region) in enumerate([(2, "west"), (4, "south")]):
        want = [(10 * (i + 1) - sizes.mean()) / sizes.std()] + [float(c == region) for c in CATS]
        # on every context step, the left padding included
        np.testing.assert_allclose(w["past"][k, :, 2:], np.tile(want, (5, 1)), rtol=1e-6)
    assert w["future"].shape == (2, 3, 0)  # static inputs go to the encoder, not the horizon steps


def test_static_covariate_must_be_constant_within_a_series():
    df = _panel()
    df.loc[(df["id"] == "s3") & (df["t"] == 20), "region"] = "south"  # s3 is "north" elsewhere
    with pytest.raises(UserInputError, match=r"constant within a series; series 's3' has 2 values"):
        D.to_series(df, _spec(df))
    df = _panel()
    df.loc[(df["id"] == "s1") & (df["t"] == 7), "size"] = 21.0
    with pytest.raises(UserInputError, match=r"'size' must be constant.*series 's1'"):
        D.to_series(df, _spec(df))


def test_empty_static_cells_take_the_series_value_and_an_all_empty_series_is_refused():
    df = _panel()
    full = D.to_series(df, _spec(df))
    gappy = df.copy()
    gappy.loc[gappy["t"] % 5 == 0, "region"] = None
    got = D.to_series(gappy, _spec(gappy))
    for a, b in zip(full, got):
        np.testing.assert_array_equal(a.static, b.static)
    gappy.loc[gappy["id"] == "s4", "size"] = np.nan
    with pytest.raises(UserInputError, match=r"'size': series 's4' has no value"):
        D.to_series(gappy, _spec(gappy))


def test_unseen_static_category_refused_at_predict(static_run, tmp_path, cli):
    src, run = static_run
    df = pd.read_csv(src)
    df.loc[df["id"] == "s5", "region"] = "east"
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    out = tmp_path / "pred"
    res = cli("forecast", "predict", "--checkpoint", run, "--csv", bad, "--output-dir", out)
    err = res.err.strip().splitlines()
    assert res.code == 2 and len(err) == 1, err
    assert "series 's5' has the category 'east', which training never saw" in err[0]
    assert "'north', 'south', 'west'" in err[0]
    assert not out.exists()


def test_cli_refuses_a_changing_static_column_before_training(tmp_path, cli):
    df = _panel()
    df["region"] = np.where(df["t"] < 30, "north", "south")  # changes within every series
    src = tmp_path / "bad.csv"
    df.to_csv(src, index=False)
    out = tmp_path / "out"
    res = cli(
        "forecast",
        "--csv",
        src,
        "--id-col",
        "id",
        "--time-col",
        "t",
        "--target",
        "y",
        "--static-covariates",
        "region",
        "--output-dir",
        out,
    )
    err = res.err.strip().splitlines()
    assert res.code == 2 and len(err) == 1 and "series 's0' has 2 values" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(covariates=["size"]), "'size' is also given to --covariates"),
        (dict(static_covariates=["id"]), "'id' is the time, target or id column"),
        (dict(static_covariates=["nope"]), "--static-covariates column 'nope' not found"),
    ],
)
def test_static_column_conflicts_refused(kw, message):
    df = _panel()
    kw = {"static_covariates": ["size"], **kw}
    with pytest.raises(UserInputError, match=message):
        D.make_spec(df, "t", "y", id_col="id", **kw)
