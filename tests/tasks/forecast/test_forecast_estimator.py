"""The public estimator ``grukit.forecast.GRUForecaster``: Nixtla's frame shape, pandas and polars, scores that
utilsforecast reproduces, save/load, model files from before the rename, and the CLI as a layer over it."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grukit.errors import UserInputError
from grukit.forecast import GRUForecaster
from grukit.tasks.forecast import data as D
from grukit.tasks.forecast import report as R

FIXTURE = Path(__file__).parent / "fixtures" / "model-83d101b"
H, M = 4, 6
SMALL = dict(epochs=2, hidden=4, season_length=M)


def panel(n_series=3, length=60, seed=0) -> pd.DataFrame:
    """Integer steps; series ``id<i>`` = 10 + i + 2·sin(2πt/6) + N(0, 0.3²) (season 6)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "unique_id": f"id{i}",
                    "ds": t,
                    "y": 10 + i + 2 * np.sin(2 * np.pi * t / M) + rng.normal(0, 0.3, length),
                }
            )
            for i in range(n_series)
        ],
        ignore_index=True,
    )


@pytest.fixture(scope="module")
def fitted_cv():
    df = panel()
    est = GRUForecaster(h=H, **SMALL)
    cv = est.cross_validation(df, n_windows=2)
    return df, est, cv


@pytest.mark.slow
def test_cross_validation_and_predict_have_nixtlas_columns(fitted_cv):
    df, est, cv = fitted_cv
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "GRU", "GRU-lo-80", "GRU-hi-80"]
    assert len(cv) == 3 * 2 * H
    # the last window of each series ends at the series' end, the windows are H apart
    last = cv.groupby("unique_id")["ds"].max()
    assert (last == 59).all()
    assert sorted(cv["cutoff"].unique()) == [51, 55]
    merged = cv.merge(df, on=["unique_id", "ds"], suffixes=("", "_df"))
    np.testing.assert_array_equal(merged["y"], merged["y_df"])  # the actuals are the data's
    assert (cv["GRU-lo-80"] <= cv["GRU"]).all() and (cv["GRU"] <= cv["GRU-hi-80"]).all()
    fc = est.predict()
    assert list(fc.columns) == ["unique_id", "ds", "GRU", "GRU-lo-80", "GRU-hi-80"]
    assert fc.groupby("unique_id")["ds"].apply(list).to_dict() == {
        f"id{i}": [60, 61, 62, 63] for i in range(3)
    }
    assert len(est.predict(h=2)) == 3 * 2
    assert list(est.predict(level=[80]).columns)[-2:] == ["GRU-lo-80", "GRU-hi-80"]
    with pytest.raises(UserInputError, match="level \\[95\\] was not trained"):
        est.predict(level=[95])
    with pytest.raises(UserInputError, match="trained horizon 4"):
        est.predict(h=5)


@pytest.mark.slow
def test_polars_in_polars_out_with_the_same_numbers(fitted_cv):
    pl = pytest.importorskip("polars")
    df, _, cv = fitted_cv
    est = GRUForecaster(h=H, **SMALL)
    cv_pl = est.cross_validation(pl.from_pandas(df), n_windows=2)
    assert isinstance(cv_pl, pl.DataFrame)
    assert cv_pl.columns == list(cv.columns)
    np.testing.assert_allclose(cv_pl["GRU"].to_numpy(), cv["GRU"].to_numpy(), rtol=1e-6)
    fc = est.predict()
    assert isinstance(fc, pl.DataFrame) and fc["unique_id"].to_list()[:H] == ["id0"] * H


@pytest.mark.slow
def test_utilsforecast_evaluate_scores_the_cv_as_grukit_does(tmp_path):
    """The run's metrics (grukit's own MASE and sMAPE, per series) equal utilsforecast.evaluate on the
    estimator's cross_validation frame: MASE with train_df = the data up to the first cutoff and
    seasonality m; utilsforecast's smape is on a 0-1 scale (×200)."""
    from functools import partial

    from utilsforecast.evaluation import evaluate
    from utilsforecast.losses import mase, smape

    df = panel()
    res = R.backtest_run(
        df,
        "y",
        "ds",
        id_col="unique_id",
        horizon=H,
        backtest=2,
        season_length=M,
        epochs=2,
        hidden=4,
        baselines=[],
        output_dir=tmp_path / "run",
    )
    cv = GRUForecaster(h=H, **SMALL).cross_validation(df, n_windows=2)
    first = cv.groupby("unique_id")["cutoff"].min()
    train = df[df["ds"] <= df["unique_id"].map(first)]
    scores = evaluate(
        cv.drop(columns=["cutoff", "GRU-lo-80", "GRU-hi-80"]),
        metrics=[partial(mase, seasonality=M), smape],
        train_df=train,
    ).set_index(["unique_id", "metric"])["GRU"]
    per = res.metrics["per_series"]
    for sid in ("id0", "id1", "id2"):
        assert scores[(sid, "mase")] == pytest.approx(per[sid]["model"]["mase"], rel=1e-6)
        assert 200 * scores[(sid, "smape")] == pytest.approx(per[sid]["model"]["smape"], rel=1e-6)
    assert np.mean([scores[(s, "mase")] for s in per]) == pytest.approx(
        res.metrics["model"]["mase"], rel=1e-6
    )


@pytest.mark.slow
def test_predict_after_save_and_load_equals_before(fitted_cv, tmp_path):
    df, est, _ = fitted_cv
    before = est.predict(df=df)
    folder = est.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == [
        "ensemble.json",
        "estimator.json",
        "model.safetensors",
        "selection.json",  # the source of each series' forecast (model selection, on by default)
    ]
    loaded = GRUForecaster.load(folder)
    assert loaded.selection_ == est.selection_
    pd.testing.assert_frame_equal(loaded.predict(df=df), before)
    with pytest.raises(UserInputError, match="not an empty folder"):
        est.save(folder)


def test_a_model_file_written_before_the_rename_still_loads_and_forecasts_the_same():
    """fixtures/model-83d101b: `grukit forecast --dataset weather --epochs 1 --hidden 4 --baselines none`
    run on main at 83d101b (class path grukit.tasks.forecast.model:GRUForecaster); forecast.csv is that
    run's own forecast."""
    est = GRUForecaster.load(FIXTURE)
    assert type(est.model_.members[0]).__name__ == "ForecastNet"
    fc = est.predict(df=D.load_builtin("weather"))
    want = pd.read_csv(FIXTURE / "forecast.csv")
    assert list(fc.columns) == ["unique_id", "date", "GRU", "GRU-lo-80", "GRU-hi-80"]
    assert fc["date"].dt.strftime("%Y-%m-%d").tolist() == want["time"].tolist()
    for col, q in (("GRU-lo-80", "q10"), ("GRU", "q50"), ("GRU-hi-80", "q90")):
        np.testing.assert_allclose(fc[col], want[q], rtol=2e-5, atol=1e-5)


def test_cli_predict_with_a_model_file_from_before_the_rename(tmp_path, cli):
    src = tmp_path / "weather.csv"
    D.load_builtin("weather").to_csv(src, index=False)
    r = cli(
        "forecast",
        "predict",
        "--checkpoint",
        FIXTURE,
        "--data",
        src,
        "--output-dir",
        tmp_path / "p",
    )
    assert r.code == 0, r.err
    got, want = pd.read_csv(tmp_path / "p" / "forecast.csv"), pd.read_csv(FIXTURE / "forecast.csv")
    assert list(got.columns) == list(want.columns) and list(got["time"]) == list(want["time"])
    np.testing.assert_allclose(got[["q10", "q50", "q90"]], want[["q10", "q50", "q90"]], rtol=2e-5)


def test_the_old_fit_and_predict_warn_and_still_work():
    from grukit.tasks import forecast

    with pytest.warns(DeprecationWarning, match="GRUForecaster.load"):
        old = forecast.predict(FIXTURE, D.load_builtin("weather"))
    want = pd.read_csv(FIXTURE / "forecast.csv")
    assert list(old.columns) == list(want.columns)
    np.testing.assert_allclose(old["q50"], want["q50"], rtol=2e-5, atol=1e-5)
    with pytest.warns(DeprecationWarning, match="cross_validation"):
        with pytest.raises(UserInputError):  # the warning comes first, then the usual checks
            forecast.fit(pd.DataFrame({"t": [1, 2], "v": [1.0, 2.0]}), "nope", "t")


@pytest.mark.slow
def test_the_cli_forecast_equals_the_estimators(tmp_path, cli):
    df = panel()
    src = tmp_path / "panel.csv"
    df.to_csv(src, index=False)
    args = ["--id-col", "unique_id", "--time-col", "ds", "--target", "y", "--horizon", H]
    r = cli(
        "forecast", "--data", src, *args, "--backtest", 2, "--season-length", M,
        "--epochs", 2, "--hidden", 4, "--baselines", "none", "--output-dir", tmp_path / "run",
    )  # fmt: skip
    assert r.code == 0, r.err
    est = GRUForecaster(h=H, **SMALL)
    cv = est.cross_validation(df, n_windows=2)
    bt = pd.read_csv(tmp_path / "run" / "backtest.csv")
    np.testing.assert_allclose(bt["gru_q50"], cv["GRU"], rtol=2e-5)
    np.testing.assert_allclose(bt["gru_q10"], cv["GRU-lo-80"], rtol=2e-5)
    np.testing.assert_allclose(bt["actual"], cv["y"], rtol=2e-5)
    fc = pd.read_csv(tmp_path / "run" / "forecast.csv")
    np.testing.assert_allclose(fc["q50"], est.predict()["GRU"], rtol=2e-5)


def test_bad_arguments_are_refused_before_training():
    with pytest.raises(UserInputError, match="level expects numbers in \\(0, 100\\)"):
        GRUForecaster(h=3, level=(120,))
    with pytest.raises(UserInputError, match="--horizon must be a positive integer"):
        GRUForecaster(h=0)
    with pytest.raises(UserInputError, match="not fitted"):
        GRUForecaster(h=3).predict()
    with pytest.raises(UserInputError, match="pandas or polars DataFrame"):
        GRUForecaster(h=3).fit({"unique_id": [1]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "GRU" in repr(GRUForecaster(h=3))


@pytest.mark.slow
def test_futr_df_and_static_df_reach_the_model(tmp_path):
    """Future-known covariates come from predict's futr_df, static ones from fit's static_df; a forecast
    without the plan is refused naming futr_df; a Lightning logger passes through trainer_kwargs."""
    from lightning.pytorch.loggers import CSVLogger

    rng = np.random.default_rng(0)
    parts = []
    for i in range(3):
        promo = (rng.random(80) < 0.3).astype(float)
        y = 10 + i + 4 * promo + rng.normal(0, 0.2, 80)
        parts.append(
            pd.DataFrame({"unique_id": f"s{i}", "ds": np.arange(80), "y": y, "promo": promo})
        )
    df = pd.concat(parts, ignore_index=True)
    static = pd.DataFrame({"unique_id": ["s0", "s1", "s2"], "region": ["a", "b", "a"]})
    logger = CSVLogger(tmp_path, name="logs")
    est = GRUForecaster(
        h=4, epochs=3, hidden=8, futr_exog_list=["promo"], stat_exog_list=["region"],
        trainer_kwargs={"logger": logger},
    )  # fmt: skip
    est.fit(df, static_df=static)
    assert list((tmp_path / "logs").rglob("metrics.csv")), "the logger was not used"
    region = est.model_.members[0].encoder.weight_ih_l0.shape[1]  # z, flag, promo, static one-hot
    assert region == 2 + 1 + 2
    plan = pd.DataFrame(
        {"unique_id": np.repeat(["s0", "s1", "s2"], 4), "ds": np.tile(np.arange(80, 84), 3)}
    )
    on = est.predict(futr_df=plan.assign(promo=1.0))
    off = est.predict(futr_df=plan.assign(promo=0.0))
    assert not np.allclose(on["GRU"], off["GRU"])  # the plan reaches the model
    with pytest.raises(UserInputError, match="predict\\(futr_df=...\\)"):
        est.predict()


@pytest.mark.slow
def test_refit_trains_each_window_on_what_comes_before_its_cutoff():
    """refit=True: window k is exactly a one-window cross_validation of the data cut to end with it."""
    df = panel(n_series=2, length=50)
    cv = GRUForecaster(h=H, **SMALL).cross_validation(df, n_windows=2, refit=True)
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "GRU", "GRU-lo-80", "GRU-hi-80"]
    assert cv["cutoff"].tolist() == [41] * H + [45] * H + [41] * H + [45] * H
    last = GRUForecaster(h=H, **SMALL).cross_validation(df, n_windows=1)
    first = GRUForecaster(h=H, **SMALL).cross_validation(df[df["ds"] < 50 - H], n_windows=1)
    for cut, ref in ((45, last), (41, first)):
        got = cv[cv["cutoff"] == cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, ref.reset_index(drop=True))
