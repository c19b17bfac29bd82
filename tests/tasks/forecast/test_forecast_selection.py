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


def test_choice_on_several_windows_by_hand():
    """The small-panel rule on 3 windows (the GRU held only the latest out of its training)."""
    nan = np.nan
    ok = np.array([[True, False, False], [True, False, False], [True, True, False]])
    scores = {
        # series 0: ets (mean 0.9) beats naive (1.0) by more than 5%; the GRU wins its one held-out
        # window by far (0.5 vs ets 0.9);
        # its 0.1s on the windows it trained on are never looked at
        # series 1: ets is best over the 3 windows (mean 0.9) but naive (mean 0.94) is within 5%
        # of it: naive; the GRU's 0.92 on the held-out window is not 5% below naive's 0.95 there
        # series 2: two windows only; ets (mean 0.5) beats naive (1.0) by far; combo (0.45 on the
        # two held-out windows) is only 10% below ets there, the GRU 0.3 is 40% below: the GRU
        "GRU": np.array([[0.5, 0.1, 0.1], [0.92, 0.1, 0.1], [0.3, 0.3, nan]]),
        "combo": np.array([[0.7, 0.1, 0.1], [0.93, 0.1, 0.1], [0.45, 0.45, nan]]),
        "naive": np.array([[1.0, 1.0, 1.0], [0.95, 0.95, 0.92], [1.0, 1.0, nan]]),
        "ets": np.array([[0.9, 0.9, 0.9], [1.0, 0.8, 0.9], [0.5, 0.5, nan]]),
    }
    assert SEL.choose_robust(scores, ok) == ["GRU", "naive", "GRU"]
    # the GRU only 4% better than ets on series 2: ets (combo is not better either)
    s2 = {**scores, "GRU": scores["GRU"].copy(), "combo": scores["combo"].copy()}
    s2["GRU"][2] = [0.48, 0.48, nan]
    s2["combo"][2] = [0.49, 0.49, nan]
    assert SEL.choose_robust(s2, ok)[2] == "ets"
    # combo and the GRU equally good: combo (the simpler)
    s3 = {**scores, "combo": scores["GRU"].copy()}
    assert SEL.choose_robust(s3, ok)[0] == "combo"
    # series 1 held nothing out of the GRU: it takes the rule on the per-window means over the
    # others (series 0 and 2): ets (means 0.7, 0.7, 0.9) over naive (1.0 each); the GRU on
    # windows 0 and 1 (0.4, 0.3) vs ets (0.7, 0.7) → the GRU
    ok2 = ok.copy()
    ok2[1] = False
    assert SEL.choose_robust(scores, ok2) == ["GRU", "GRU", "GRU"]
    # no series held anything out: each its own simplest statistical candidate
    assert SEL.choose_robust(scores, np.zeros_like(ok)) == ["ets", "naive", "ets"]
    # no finite statistical score: the GRU
    assert SEL.choose_robust(
        {"GRU": np.ones((1, 2)), "naive": np.full((1, 2), nan)}, ok[:1, :2]
    ) == ["GRU"]


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
