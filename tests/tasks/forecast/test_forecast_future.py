"""Future-known covariates (`--future-covariates`): their values over the horizon enter the forecast, the
target's future never does, and a file without them for every forecast step is refused, naming the steps.

The promotion test is the issue's goal: demand = season + 5 on promotion days (a random 20% of days) +
noise. A model that knows the promotion calendar of the forecast steps must halve the MAE of one that
does not."""

import numpy as np
import pandas as pd
import pytest
from support import run_cli_subprocess

from grukit.errors import UserInputError
from grukit.tasks.forecast import data as D
from grukit.tasks.forecast import report as R

H, EFFECT, LENGTH = 7, 5.0, 300


def promo_data(n_series=4, length=LENGTH, future=H, seed=0) -> pd.DataFrame:
    """Integer steps; ``units`` = 10 + i + 2·sin(2πt/7) + 5·promo + N(0, 0.3²); the last ``future`` rows of
    each store hold the promotion plan with ``units`` empty."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n_series):
        t = np.arange(length + future)
        promo = (rng.random(len(t)) < 0.2).astype(int)
        y = 10 + i + 2 * np.sin(2 * np.pi * t / 7) + EFFECT * promo + rng.normal(0, 0.3, len(t))
        y[length:] = np.nan
        parts.append(pd.DataFrame({"store": f"s{i}", "t": t, "units": y, "promo": promo}))
    return pd.concat(parts, ignore_index=True)


def _fit_cli(src, out, *extra):
    res = run_cli_subprocess(
        "forecast",
        "--csv",
        src,
        "--id-col",
        "store",
        "--time-col",
        "t",
        "--target",
        "units",
        "--season-length",
        7,
        "--horizon",
        H,
        "--context",
        28,
        "--backtest",
        5,
        "--epochs",
        15,
        "--hidden",
        16,
        "--seed",
        0,
        "--baselines",
        "none",
        "--output-dir",
        out,
        *extra,
    )
    assert res.code == 0, res.err[-2000:]
    return out


@pytest.fixture(scope="module")
def promo_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("promo")
    df = promo_data()
    with_plan, history = root / "with_plan.csv", root / "history.csv"
    df.to_csv(with_plan, index=False)
    df[df["units"].notna()].to_csv(history, index=False)
    known = _fit_cli(with_plan, root / "known", "--future-covariates", "promo")
    blind = _fit_cli(history, root / "blind")
    return df, with_plan, known, blind


def _mae(run) -> float:
    bt = pd.read_csv(run / "backtest.csv")
    return float(np.mean(np.abs(bt["actual"] - bt["gru_q50"])))


@pytest.mark.slow
def test_promotion_goal_future_covariates_halve_the_mae(promo_runs):
    df, _, known, blind = promo_runs
    bt = pd.read_csv(known / "backtest.csv")
    assert len(bt) == 4 * 5 * H  # 4 stores × 5 origins × 7 steps, all scored
    # the backtest's actuals are the file's values (the plan rows are not part of the series)
    src = df.set_index(["store", "t"])["units"]
    np.testing.assert_allclose(
        bt["actual"], src.loc[list(zip(bt["series"], bt["time"]))], rtol=1e-5
    )
    mae_known, mae_blind = _mae(known), _mae(blind)
    # blind, the median can only follow the season: it misses each promotion by about 5, on ~20% of days
    assert mae_blind > 0.5
    assert mae_known <= 0.5 * mae_blind, (mae_known, mae_blind)


def test_backtest_uses_no_target_after_its_origin(promo_runs):
    """The last backtest origin's forecast = predict on the data cut at that origin, the promotion plan of
    the next 7 steps given as rows with the target empty: nothing of the target's future went in."""
    df, _, known, _ = promo_runs
    origin = LENGTH - H  # first forecast step of the last origin
    cut = df[df["t"] < origin + H].copy()
    cut.loc[cut["t"] >= origin, "units"] = np.nan
    fc = R.predict_table(known, cut)
    bt = pd.read_csv(known / "backtest.csv")
    last = bt[bt["origin"] == origin - 1].sort_values(["series", "step"])
    assert len(last) == 4 * H
    assert list(fc["time"]) == list(last["time"])
    np.testing.assert_allclose(
        fc[["q10", "q50", "q90"]].to_numpy(), last[["gru_q10", "gru_q50", "gru_q90"]], rtol=2e-5
    )
    # and predict on the full file (plan rows for the 7 steps after the data) is the run's forecast
    ref = pd.read_csv(known / "forecast.csv")
    np.testing.assert_allclose(R.predict_table(known, df)[["q50"]], ref[["q50"]], rtol=1e-5)


def test_the_promotion_plan_of_the_forecast_steps_moves_the_forecast(promo_runs):
    df, _, known, _ = promo_runs
    base = R.predict_table(known, df)
    s0 = (df["store"] == "s0") & (df["t"] >= LENGTH)  # s0's plan rows: steps 1..7
    for step in (2, 6):
        row = s0 & (df["t"] == LENGTH + step - 1)
        plan = df.copy()
        plan.loc[row, "promo"] = 1 - plan.loc[row, "promo"]
        delta = -1.0 if df.loc[row, "promo"].iloc[0] == 1 else 1.0  # +1: added, −1: removed
        got = R.predict_table(known, plan)
        diff = got["q50"].to_numpy() - base["q50"].to_numpy()
        k = np.nonzero((got["series"] == "s0").to_numpy() & (got["step"] == step).to_numpy())[0][0]
        assert diff[k] * delta > EFFECT / 2, (step, diff[k])  # the learned effect, about +5
        assert np.all(diff[(got["series"] != "s0").to_numpy()] == 0)  # other stores untouched
    # plan rows beyond the horizon, and values older than the context, change nothing
    later = pd.concat([df, df[s0].assign(t=df.loc[s0, "t"] + H, promo=1)], ignore_index=True)
    pd.testing.assert_frame_equal(R.predict_table(known, later), base)
    old = df.copy()
    old.loc[(old["store"] == "s0") & (old["t"] < LENGTH - 28), "promo"] = 1
    pd.testing.assert_frame_equal(R.predict_table(known, old), base)


def test_window_inputs_take_the_covariate_at_the_right_steps_and_no_future_target():
    df = promo_data(n_series=1, length=40)
    spec = D.make_spec(
        df,
        "t",
        "units",
        id_col="store",
        future_covariates=["promo"],
        season_length=7,
        scaling="window",
    )
    (s,) = D.to_series(df, spec)
    assert len(s) == 40 and s.xf.shape == (47, 1)  # 40 steps + the 7-step plan
    D.fit_covariate_scalers([s.head(30)], spec)
    promo = df["promo"].to_numpy(np.float64)
    mu, sd = promo[:30].mean(), promo[:30].std()
    assert spec.covariate_scalers["future_mean"] == pytest.approx([mu])
    assert spec.covariate_scalers["future_std"] == pytest.approx([sd])
    C, o = 10, 25
    assert D.past_feature_names(spec) == [
        "z",
        "observed",
        "future:promo",
        "season7_sin",
        "season7_cos",
    ]
    assert D.future_feature_names(spec)[:1] == ["future:promo"]

    def window(series):
        return D.Panel([series], spec, C, H).windows([0], [o])

    w = window(s)
    np.testing.assert_allclose(w["future"][0, :, 0], (promo[o : o + H] - mu) / sd, rtol=1e-6)
    np.testing.assert_allclose(w["past"][0, :, 2], (promo[o - C : o] - mu) / sd, rtol=1e-6)
    # the target after the origin never enters past or future; the covariate at a forecast step only
    # enters that step's future row
    y2 = s.y.copy()
    y2[o:] += 100.0
    w2 = window(D.Series(s.id, s.times, y2, s.x, xf=s.xf))
    for k in ("past", "future"):
        np.testing.assert_array_equal(w[k], w2[k])
    xf = s.xf.copy()
    xf[o + 3] = 1 - xf[o + 3]
    xf[o + H :] = 1 - xf[o + H :]  # beyond the horizon
    xf[: o - C] = 1 - xf[: o - C]  # before the context
    w3 = window(D.Series(s.id, s.times, s.y, s.x, xf=xf))
    np.testing.assert_array_equal(w["past"], w3["past"])
    changed = np.nonzero((w["future"] != w3["future"]).any(-1)[0])[0]
    assert changed.tolist() == [3]


@pytest.mark.parametrize(
    "plan_rows, message",
    [
        (0, "has no 'promo' value for 7 of the 7 forecast steps (step(s) 1, 2, 3, 4, 5 ...: 300, "),
        (
            3,
            "has no 'promo' value for 4 of the 7 forecast steps (step(s) 4, 5, 6, 7: 303, 304, 305, 306)",
        ),
    ],
)
def test_predict_refuses_a_file_without_the_plan_naming_the_steps(
    promo_runs, plan_rows, message, tmp_path, cli
):
    df, _, known, _ = promo_runs
    short = df[df["t"] < LENGTH + plan_rows]
    src = tmp_path / "new.csv"
    short.to_csv(src, index=False)
    out = tmp_path / "pred"
    res = cli("forecast", "predict", "--checkpoint", known, "--csv", src, "--output-dir", out)
    err = res.err.strip().splitlines()
    assert res.code == 2 and len(err) == 1 and err[0].startswith("error:"), err
    assert "series 's0' " + message in err[0], err[0]
    assert "and 3 more series lack some" in err[0]
    assert not out.exists()


def test_an_empty_plan_cell_is_a_missing_step_and_fit_refuses_before_writing(tmp_path):
    df = promo_data(n_series=2, length=60)
    df.loc[(df["store"] == "s1") & (df["t"] == 62), "promo"] = np.nan  # s1's step 3
    with pytest.raises(
        UserInputError,
        match=r"series 's1' has no 'promo' value for 1 of the 7 .*\(step\(s\) 3: 62\)",
    ):
        R.backtest_run(
            df,
            "units",
            "t",
            id_col="store",
            future_covariates=["promo"],
            horizon=H,
            output_dir=tmp_path / "r",
        )
    assert not (tmp_path / "r").exists()


def test_categorical_future_covariate_is_one_hot_at_the_forecast_steps():
    df = promo_data(n_series=1, length=40)
    df["holiday"] = np.where(df["t"] % 10 == 0, "yes", "no")
    spec = D.make_spec(df, "t", "units", future_covariates=["holiday"], scaling="window")
    assert spec.future_categorical == {"holiday": ["no", "yes"]}
    (s,) = D.to_series(df.drop(columns="store"), spec)
    D.fit_covariate_scalers([s], spec)
    w = D.Panel([s], spec, 8, H).windows([0], [40])  # the forecast after the data: steps 40..46
    np.testing.assert_array_equal(
        w["future"][0, :, 1], (np.arange(40, 47) % 10 == 0).astype(np.float32)
    )
    np.testing.assert_array_equal(
        w["future"][0, :, 0], (np.arange(40, 47) % 10 != 0).astype(np.float32)
    )


def test_cli_fit_without_the_plan_exits_2_before_training(tmp_path, cli):
    df = promo_data(n_series=2, length=60)
    src = tmp_path / "history.csv"
    df[df["units"].notna()].to_csv(src, index=False)
    out = tmp_path / "out"
    res = cli(
        "forecast",
        "--csv",
        src,
        "--id-col",
        "store",
        "--time-col",
        "t",
        "--target",
        "units",
        "--future-covariates",
        "promo",
        "--output-dir",
        out,
    )
    err = res.err.strip().splitlines()
    assert res.code == 2 and len(err) == 1, err
    assert "series 's0' has no 'promo' value for 7 of the 7 forecast steps" in err[0]
    assert not out.exists()
