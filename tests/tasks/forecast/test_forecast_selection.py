"""Model selection of the default forecast (issue 31): the rule against hand-computed cases, the chosen
source's forecast against statsforecast, no look at a series' future, and select=False / --no-select."""

import numpy as np
import pandas as pd
import pytest

from grukit.forecast import GRUForecaster
from grukit.tasks.forecast import selection as SEL

H, M = 4, 6
SMALL = dict(epochs=2, hidden=4, season_length=M)


def panel(n_series=2, length=50, seed=0) -> pd.DataFrame:
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


def test_naive_scale_by_hand():
    # lag 2 on [1, 2, 4, 7, 11]: |4-1|, |7-2|, |11-4| = 3, 5, 7 → 5
    assert SEL.naive_scale(np.array([1.0, 2.0, 4.0, 7.0, 11.0]), 2) == 5.0
    # not longer than m: lag 1; a constant history: scale 1 (no division by 0)
    assert SEL.naive_scale(np.array([1.0, 3.0]), 12) == 2.0
    assert SEL.naive_scale(np.array([5.0, 5.0, 5.0]), 1) == 1.0


def test_validation_scores_and_choice_by_hand():
    actual = np.array([[10.0, 12.0], [5.0, np.nan], [1.0, 1.0]])
    medians = {
        "GRU": np.array([[11.0, 12.0], [5.0, 0.0], [3.0, 3.0]]),
        "naive": np.array([[10.0, 10.0], [7.0, 7.0], [1.0, 2.0]]),
    }
    scale = np.array([2.0, 1.0, 0.5])
    s = SEL.validation_scores(actual, medians, scale)
    # row 0: GRU (1 + 0)/2 / 2 = 0.25, naive (0 + 2)/2 / 2 = 0.5; row 1: the NaN step is left out:
    # GRU 0/1, naive 2/1; row 2: GRU 2/0.5 = 4, naive 0.5/0.5 = 1
    np.testing.assert_allclose(s["GRU"], [0.25, 0.0, 4.0])
    np.testing.assert_allclose(s["naive"], [0.5, 2.0, 1.0])
    # own series choose for themselves; the third (not held out) takes the panel's choice: mean over
    # the own ones GRU (0.25 + 0) / 2 < naive (0.5 + 2) / 2
    assert SEL.choose(s, np.array([True, True, False]), ("GRU", "naive")) == ["GRU", "GRU", "GRU"]
    assert SEL.choose(s, np.array([True, True, True]), ("GRU", "naive")) == ["GRU", "GRU", "naive"]
    # a tie goes to the earlier candidate (the GRU); no own series at all: the GRU
    tie = {"GRU": np.array([1.0]), "naive": np.array([1.0])}
    assert SEL.choose(tie, np.array([True]), ("GRU", "naive")) == ["GRU"]
    assert SEL.choose(s, np.zeros(3, bool), ("GRU", "naive")) == ["GRU"] * 3
    # a non-finite score: the GRU
    bad = {"GRU": np.array([1.0]), "naive": np.array([np.nan])}
    assert SEL.choose(bad, np.array([True]), ("GRU", "naive")) == ["GRU"]


def test_validation_origins_roll_back_from_the_scored_origin():
    # h 6 before origin 30: 24, 18, 12, 6 (0 has fewer than MIN_HISTORY = 4 points before it)
    assert SEL.validation_origins(30, 6, 5) == [24, 18, 12, 6]
    assert SEL.validation_origins(30, 6, 2) == [24, 18]
    assert SEL.validation_origins(9, 6, 5) == []


def test_beats_is_the_one_standard_error_rule_by_hand():
    inc = np.array([1.0, 1.0, 1.0, 1.0])
    # differences 0.3, 0.3, 0.3, 0.3: mean 0.3 > 5% of 1.0 and > SE 0
    assert SEL.beats(np.array([0.7, 0.7, 0.7, 0.7]), inc)
    # differences 0.6, 0, 0.6, 0: mean 0.3, SD sqrt(0.12) = 0.3464, SE 0.1732, × t(3 df, 84.13%)
    # 1.197 = 0.2073: beats
    assert SEL.beats(np.array([0.4, 1.0, 0.4, 1.0]), inc)
    # differences 1.2, 0, 0, 0: mean 0.3, SD 0.6, SE 0.3: not more than one SE
    assert not SEL.beats(np.array([-0.2, 1.0, 1.0, 1.0]), inc)
    # two windows, t(1 df, 84.13%) = 1.837: differences 0.5, 0.3 (mean 0.4, SE 0.1 → 0.184) beat;
    # 0.5, 0.1 (mean 0.3, SE 0.2 → 0.367) do not, though more than one plain SE
    assert SEL.beats(np.array([0.5, 0.7]), np.array([1.0, 1.0]))
    assert not SEL.beats(np.array([0.5, 0.9]), np.array([1.0, 1.0]))
    # differences 0.04 each: below 5% of the incumbent's mean 1.0
    assert not SEL.beats(inc - 0.04, inc)
    # only the paired windows count (NaN left out), and one window cannot tell
    assert SEL.beats(np.array([0.5, 0.5, np.nan]), np.array([1.0, 1.0, 0.0]))
    assert not SEL.beats(np.array([0.5, np.nan]), np.array([1.0, 0.0]))
    assert not SEL.beats(np.array([0.1]), np.array([1.0]))


def test_choice_on_several_windows_by_hand():
    """The small-panel rule on 4 validation windows; the GRU held the latest 2 out of its training."""
    nan = np.nan
    ok = np.array([[True, True, False, False]] * 3)
    scores = {
        # series 0: ets (mean 0.5) beats naive (1.0: differences 0.5 each, SE 0): ets; the GRU beats
        # ets on its held-out windows (0.2 vs 0.5, SE 0); its 0.0s on trained-on windows are never
        # looked at
        # series 1: ets has the lower mean (0.75 vs naive 1.0) but the differences 1, 0, 0, 0 have
        # SE 0.25 = their mean: not clearly better, naive stays; the GRU (0.1, 1.9) is no better than
        # naive (1.0, 1.0) on average; combo (0.6, 0.6) beats it (0.4, SE 0)
        # series 2: naive has no score on the last 2 windows: ets and naive are compared on the
        # first 2 only (0.2 vs 1.0): ets; the GRU equals ets there: ets
        "GRU": np.array([[0.2, 0.2, 0.0, 0.0], [0.1, 1.9, 0.0, 0.0], [0.2, 0.2, 0.0, 0.0]]),
        "combo": np.array([[0.4, 0.4, 0.0, 0.0], [0.6, 0.6, 0.0, 0.0], [0.3, 0.3, 0.0, 0.0]]),
        "naive": np.array([[1.0] * 4, [1.0] * 4, [1.0, 1.0, nan, nan]]),
        "ets": np.array([[0.5] * 4, [0.0, 1.0, 1.0, 1.0], [0.2, 0.2, 5.0, 5.0]]),
    }
    assert SEL.choose_robust(scores, ok) == ["GRU", "combo", "ets"]
    # combo and the GRU equally good: combo (the simpler)
    assert SEL.choose_robust({**scores, "combo": scores["GRU"]}, ok)[0] == "combo"
    # one held-out window only: the GRU cannot be told apart from ets on series 0
    one = ok.copy()
    one[:, 1] = False
    assert SEL.choose_robust(scores, one)[0] == "ets"
    # series 1 held nothing out of the GRU: the rule on the per-window means over series 0 and 2:
    # naive (1, 1, 1, 1) vs ets (0.35, 0.35, 2.75, 2.75): ets has the higher mean, naive is the best;
    # the GRU (0.2, 0.2) beats naive (1, 1) on the held-out windows
    ok2 = ok.copy()
    ok2[1] = False
    assert SEL.choose_robust(scores, ok2) == ["GRU", "GRU", "ets"]
    # no series held anything out: each its own statistical choice
    assert SEL.choose_robust(scores, np.zeros_like(ok)) == ["ets", "naive", "ets"]
    # no finite statistical score: the GRU
    assert SEL.choose_robust(
        {"GRU": np.ones((1, 2)), "naive": np.full((1, 2), nan)}, ok[:1, :2]
    ) == ["GRU"]


def test_small_panel_rule_by_hand():
    """choose_small on 3 validation windows; the GRU held the latest 2 out of its training."""
    nan = np.nan
    ok = np.array([[True, True, False]] * 5)
    scores = {
        "stat_combo": np.array([[1.0] * 3, [1.0] * 3, [1.0] * 3, [1.0] * 3, [nan] * 3]),
        # series 0: naive (0.5 each: 0.5 better, SE 0) beats stat_combo; the GRU (0.4, 0.4 held out)
        # is 0.1 better than naive there (> 5% of 0.5, SE 0): the GRU
        # series 1: snaive has the lower trivial mean (0.6 vs naive 2) but differences 0.9, 0.9, -0.7
        # (mean 0.367, SE 0.533 × 1.32): not clearly better, stat_combo stays; the GRU's 0.0 on the
        # window it trained on is never looked at, on its held-out windows it ties stat_combo
        # series 2: the GRU is far better but on one held-out window only (the other is NaN)
        # series 3: the trivial ones are worse; the GRU is better on average (0.1, 1.5: mean 0.8) but
        # not clearly (SE 0.7 × 1.84)
        # series 4: no stat_combo score: it stays the default; the GRU's (0.2, 0.2) is compared with
        # nothing
        "naive": np.array([[0.5] * 3, [2.0] * 3, [3.0] * 3, [3.0] * 3, [0.1] * 3]),
        "snaive": np.array([[0.6] * 3, [0.1, 0.1, 1.7], [2.0] * 3, [2.0] * 3, [0.1] * 3]),
        "GRU": np.array(
            [[0.4, 0.4, 9.0], [1.0, 1.0, 0.0], [0.1, nan, 0.0], [0.1, 1.5, 0.0], [0.2, 0.2, 0.2]]
        ),
    }
    assert SEL.choose_small(scores, ok) == [
        "GRU",
        "stat_combo",
        "stat_combo",
        "stat_combo",
        "stat_combo",
    ]
    # no window held out of the GRU: the statistical choice alone
    assert SEL.choose_small(scores, np.zeros_like(ok)) == ["naive"] + ["stat_combo"] * 4
    # the GRU judged on every window would win series 1 (0.67 vs 1.0 mean: differences 0, 0, 1)? no:
    # SE 0.33 × 1.32 = 0.44 > 0.33; and on series 2 it would (0.1, 0.0 vs 1.0, 1.0)
    assert SEL.choose_small(scores, np.ones_like(ok))[:3] == ["naive", "stat_combo", "GRU"]


def test_stat_combo_is_the_mean_of_ets_theta_arima():
    f = {k: np.full((1, 2, 3), v) for k, v in (("ets", 2.0), ("theta", 6.0), ("arima", 7.0))}
    np.testing.assert_allclose(SEL.with_combo(f, stat=True)["stat_combo"], 5.0)
    # without AutoARIMA (a season longer than ARIMA_MAX_SEASON): the mean of the other two
    no_arima = {k: v for k, v in f.items() if k != "arima"}
    np.testing.assert_allclose(SEL.with_combo(no_arima, stat=True)["stat_combo"], 4.0)
    assert "stat_combo" not in SEL.with_combo(f)  # the larger panels' path: not made
    assert SEL.small_stat_candidates(12)[-1] == "arima"
    assert "arima" not in SEL.small_stat_candidates(13)


@pytest.mark.slow
def test_stat_combo_source_is_the_mean_of_statsforecasts_forecasts():
    """A series whose source is stat_combo gets the mean of statsforecast's AutoETS, AutoTheta and
    AutoARIMA forecasts and 80% bounds (fitted on the last 500 points: all 50 here)."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    df = panel()
    est = GRUForecaster(h=H, **SMALL).fit(df)
    est.selection_ = {"id0": SEL.STAT_COMBO, "id1": "GRU"}
    fc = est.predict()
    a = fc[fc["unique_id"] == "id0"]
    one = df[df["unique_id"] == "id0"].assign(ds=lambda d: d["ds"].astype(int))
    models = [AutoETS(season_length=M), AutoTheta(season_length=M), AutoARIMA(season_length=M)]
    sf = StatsForecast(models=models, freq=1).forecast(df=one, h=H, level=[80])
    for col, suffix in (("GRU", ""), ("GRU-lo-80", "-lo-80"), ("GRU-hi-80", "-hi-80")):
        want = np.mean(
            [sf[f"{n}{suffix}"].to_numpy() for n in ("AutoETS", "AutoTheta", "AutoARIMA")], 0
        )
        np.testing.assert_allclose(a[col].to_numpy(), want, rtol=1e-6)


def test_combo_is_the_mean_of_gru_ets_theta():
    f = {k: np.full((1, 2, 3), v) for k, v in (("GRU", 1.0), ("ets", 2.0), ("theta", 6.0))}
    np.testing.assert_allclose(SEL.with_combo(f)["combo"], 3.0)
    assert "combo" not in SEL.with_combo({"GRU": f["GRU"]})


@pytest.mark.slow
def test_a_statistical_source_returns_statsforecasts_forecast():
    """A series whose source is naive gets statsforecast's Naive (last value, its own 80% interval)."""
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    df = panel()
    est = GRUForecaster(h=H, **SMALL).fit(df)
    assert set(est.selection_) == {"id0", "id1"}
    assert set(est.selection_.values()) <= set(SEL.CANDIDATES)
    assert set(est.selection_scores_["id0"]) == set(SEL.CANDIDATES)
    # a panel of 2 series of 50 points, h 4: 5 validation windows each (origins 46, 42, ..., 30)
    assert est.selection_windows_ == {"id0": 5, "id1": 5}
    held = est.training_.held_from
    assert set(held) == {"id0", "id1"} and all(0 < v <= 50 - H for v in held.values())
    est.selection_ = {"id0": "naive", "id1": "GRU"}
    fc = est.predict()
    raw = est._forecast_frame(est.series_, est.ids_, H, None, None)
    est.selection_ = {}
    gru = est.predict()
    a = fc[fc["unique_id"] == "id0"]
    last = df[df["unique_id"] == "id0"]["y"].iloc[-1]
    np.testing.assert_allclose(a["GRU"], last)  # the naive forecast, by hand
    sf = StatsForecast(models=[Naive()], freq=1).forecast(
        df=df[df["unique_id"] == "id0"].assign(ds=lambda d: d["ds"].astype(int)), h=H, level=[80]
    )
    np.testing.assert_allclose(a["GRU-lo-80"], sf["Naive-lo-80"])
    np.testing.assert_allclose(a["GRU-hi-80"], sf["Naive-hi-80"])
    # the GRU-sourced series is untouched
    pd.testing.assert_frame_equal(
        fc[fc["unique_id"] == "id1"].reset_index(drop=True),
        gru[gru["unique_id"] == "id1"].reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(raw, fc)


@pytest.mark.slow
def test_last_backtest_origin_equals_predict_on_data_cut_there():
    """No leakage from a series' future: the selection and forecast of the last backtest window are
    those of a fit on the data cut at that window's origin."""
    df = panel()
    cv_est = GRUForecaster(h=H, **SMALL)
    cv = cv_est.cross_validation(df, n_windows=2, refit=True)
    cut = df[df["ds"] < 50 - H]
    est = GRUForecaster(h=H, **SMALL).fit(cut)
    fc = est.predict()
    assert cv_est.selection_ == est.selection_
    got = cv[cv["cutoff"] == 50 - H - 1].reset_index(drop=True)
    for col in ("GRU", "GRU-lo-80", "GRU-hi-80"):
        np.testing.assert_allclose(got[col].to_numpy(), fc[col].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(got["ds"].to_numpy(), fc["ds"].to_numpy())


@pytest.mark.slow
def test_larger_panel_last_backtest_origin_equals_predict_on_data_cut_there():
    """No leakage through the panel weights: the blend of the last backtest window is that of a fit on
    the data cut at that window's origin."""
    df = panel(n_series=SEL.PER_SERIES_MAX + 1, length=40)
    cv_est = GRUForecaster(h=H, **SMALL)
    cv = cv_est.cross_validation(df, n_windows=2, refit=True)
    est = GRUForecaster(h=H, **SMALL).fit(df[df["ds"] < 40 - H])
    fc = est.predict()
    assert set(est.selection_.values()) == {SEL.BLEND}
    assert cv_est.selection_weights_ == est.selection_weights_
    got = cv[cv["cutoff"] == 40 - H - 1].reset_index(drop=True)
    for col in ("GRU", "GRU-lo-80", "GRU-hi-80"):
        np.testing.assert_allclose(got[col].to_numpy(), fc[col].to_numpy(), rtol=1e-6)


@pytest.mark.slow
def test_select_false_is_the_gru_alone(tmp_path):
    df = panel()
    est = GRUForecaster(h=H, select=False, **SMALL).fit(df)
    assert est.selection_ == {} and est.selection_scores_ == {}
    on = GRUForecaster(h=H, **SMALL).fit(df)
    on.selection_ = {}
    pd.testing.assert_frame_equal(est.predict(), on.predict())
    # the choice travels with a saved model
    sel = GRUForecaster(h=H, **SMALL).fit(df)
    sel.selection_ = {"id0": "snaive", "id1": "GRU"}
    back = GRUForecaster.load(sel.save(tmp_path / "m"))
    assert back.selection_ == sel.selection_
    pd.testing.assert_frame_equal(back.predict(df=df), sel.predict())


def test_cli_no_select_flag(cli, tmp_path):
    res = cli("forecast", "--help")
    assert "--no-select" in res.out


def test_blend_weights_by_hand():
    """The larger-panel weights: the grid point with the lowest mean validation MASE over the series the
    GRU held out, moved halfway to equal weights."""
    assert SEL.weight_grid(3, 0.5).tolist() == [
        [0.0, 0.0, 1.0],
        [0.0, 0.5, 0.5],
        [0.0, 1.0, 0.0],
        [0.5, 0.0, 0.5],
        [0.5, 0.5, 0.0],
        [1.0, 0.0, 0.0],
    ]
    actual = np.array([[2.0, 2.0], [4.0, 4.0], [100.0, 100.0]])
    med = {
        "GRU": np.array([[0.0, 0.0], [2.0, 2.0], [100.0, 100.0]]),
        "ets": np.array([[4.0, 4.0], [6.0, 6.0], [0.0, 0.0]]),
        "theta": np.array([[10.0, 10.0], [10.0, 10.0], [0.0, 0.0]]),
    }
    scale = np.array([1.0, 2.0, 1.0])
    own = np.array([True, True, False])  # series 2 (where the GRU is perfect) was trained on
    # on series 0 and 1 half GRU + half ets is exact (errors 0); every other grid point of step 0.5
    # errs (e.g. all GRU: 2/1 and 2/2, mean 1.5): best (0.5, 0.5, 0); halfway to 1/3 each:
    # (0.5 + 1/3)/2, (0.5 + 1/3)/2, (0 + 1/3)/2
    w = SEL.blend_weights(actual, med, scale, own, step=0.5)
    assert w == pytest.approx({"GRU": 5 / 12, "ets": 5 / 12, "theta": 1 / 6}, abs=1e-4)
    # no shrinkage: the validation-best weights themselves
    assert SEL.blend_weights(actual, med, scale, own, step=0.5, shrink=0.0) == {
        "GRU": 0.5,
        "ets": 0.5,
        "theta": 0.0,
    }
    # no series held out, or one with a NaN forecast: equal weights
    assert SEL.blend_weights(actual, med, scale, np.zeros(3, bool)) == pytest.approx(
        {"GRU": 1 / 3, "ets": 1 / 3, "theta": 1 / 3}, abs=1e-4
    )
    bad = {**med, "ets": np.where(own[:, None], np.nan, med["ets"])}
    assert SEL.blend_weights(actual, bad, scale, own) == pytest.approx(
        {"GRU": 1 / 3, "ets": 1 / 3, "theta": 1 / 3}, abs=1e-4
    )
    # the blend itself: the weighted mean of the quantiles
    f = {k: np.full((1, 2, 3), v) for k, v in (("GRU", 1.0), ("ets", 2.0), ("theta", 6.0))}
    np.testing.assert_allclose(SEL.weighted(f, {"GRU": 0.5, "ets": 0.25, "theta": 0.25}), 2.5)


@pytest.mark.slow
def test_a_larger_panel_blends_with_panel_weights(tmp_path):
    """More than 20 series: every series' source is the blend, its forecast the weighted mean of the
    GRU's, AutoETS's and AutoTheta's; the weights travel with a saved model."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta

    df = panel(n_series=SEL.PER_SERIES_MAX + 1, length=40)
    est = GRUForecaster(h=H, **SMALL).fit(df)
    assert set(est.selection_.values()) == {SEL.BLEND}
    w = est.selection_weights_
    assert set(w) == set(SEL.COMBO) and sum(w.values()) == pytest.approx(1.0, abs=1e-3)
    assert min(w.values()) >= SEL.SHRINK / 3 - 1e-4  # shrunk toward equal weights
    # only the series whose validation window the GRU held out are scored (and their statistical
    # candidates fitted): the others' windows are ones the GRU trained on
    held = est.training_.held_from
    assert 0 < len(held) < len(est.selection_)
    assert set(est.selection_scores_) == set(held)
    assert all(
        np.isfinite(v["ets"]) and np.isfinite(v["GRU"]) for v in est.selection_scores_.values()
    )
    fc = est.predict()
    sel = dict(est.selection_)
    est.selection_ = {}
    gru = est.predict()
    est.selection_ = sel
    sf = StatsForecast(
        models=[AutoETS(season_length=M), AutoTheta(season_length=M)], freq=1
    ).forecast(df=df.assign(ds=lambda d: d["ds"].astype(int)), h=H)
    sf = sf.reset_index() if "unique_id" not in sf.columns else sf
    key = ["unique_id", "ds"]
    fc, gru = (x.sort_values(key).reset_index(drop=True) for x in (fc, gru))
    sf = sf.assign(unique_id=sf["unique_id"].astype(str)).sort_values(key).reset_index(drop=True)
    assert (sf["unique_id"].to_numpy() == fc["unique_id"].astype(str).to_numpy()).all()
    want = w["GRU"] * gru["GRU"].to_numpy() + (
        w["ets"] * sf["AutoETS"].to_numpy() + w["theta"] * sf["AutoTheta"].to_numpy()
    )
    # the weights are rounded to 4 decimals; the blend divides by their sum
    np.testing.assert_allclose(fc["GRU"].to_numpy(), want / sum(w.values()), rtol=1e-5)
    back = GRUForecaster.load(est.save(tmp_path / "m"))
    assert back.selection_weights_ == w
    pd.testing.assert_frame_equal(back.predict(df=df).sort_values(key).reset_index(drop=True), fc)
