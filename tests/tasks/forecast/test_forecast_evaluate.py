"""Baselines and metrics against hand-computed values (not produced by the code under test)."""

import math

import numpy as np
import pytest

from grukit.tasks.forecast import evaluate as E

Y = np.array([1.0, 3, 2, 5, 4, 6, 5, 8])


def test_naive_and_seasonal_naive_by_hand():
    assert E.naive(Y, 3)[:, 1].tolist() == [8, 8, 8]
    # m=2: ŷ_{T+1}=y_{T-1}=5, ŷ_{T+2}=y_T=8, ŷ_{T+3}=y_{T-1}=5
    assert E.seasonal_naive(Y, 3, 2)[:, 1].tolist() == [5, 8, 5]
    # naive band: sd of one-step changes sqrt(29/7), widened by sqrt(h)
    sd = math.sqrt(29 / 7)
    band = E.naive(Y, 3)
    for k in range(3):
        assert band[k, 2] - 8 == pytest.approx(1.2815515655 * sd * math.sqrt(k + 1), rel=1e-9)
        assert 8 - band[k, 0] == pytest.approx(1.2815515655 * sd * math.sqrt(k + 1), rel=1e-9)


def test_mase_scale_and_metrics_by_hand():
    # |y_t − y_{t−2}| = 1, 2, 2, 1, 1, 2 → 1.5
    assert E.mase_scale(Y, 2) == pytest.approx(1.5)
    assert E.mase_scale(Y, 1) == pytest.approx(13 / 7)  # |2|,|1|,|3|,|1|,|2|,|1|,|3|
    actual = np.array([9.0, 7, 14])
    q = E.naive(Y, 3)  # point 8: errors 1, 1, 6; upper band at step 3 = 8 + 4.52 < 14
    m = E.point_metrics(actual, q, E.mase_scale(Y, 2))
    assert m["mae"] == pytest.approx(8 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(38 / 3))
    assert m["mase"] == pytest.approx((8 / 3) / 1.5)
    assert m["coverage_80"] == pytest.approx(2 / 3)


def test_average_and_best_marking():
    rows = {
        "a": {"mae": 1.0, "rmse": 2.0, "mase": 0.5, "coverage_80": 0.6},
        "b": {"mae": 2.0, "rmse": 1.0, "mase": 0.7, "coverage_80": 0.85},
    }
    assert E.best_per_metric(rows) == {"mae": "a", "rmse": "b", "mase": "a", "coverage_80": "b"}
    avg = E.average(
        [rows["a"], rows["b"], {"mae": float("nan"), "rmse": 3.0, "mase": 0.6, "coverage_80": 0.9}]
    )
    assert avg["mae"] == pytest.approx(1.5) and avg["rmse"] == pytest.approx(2.0)


def test_ets_and_arima_recover_a_clean_pattern():
    # a period-4 pattern on a gentle slope plus small noise: ETS must continue it (oracle: the generating rule)
    rng = np.random.default_rng(0)
    t = np.arange(120)
    pattern = np.array([3.0, -1.0, 0.5, -2.5])
    y = 10 + 0.05 * t + pattern[t % 4] + 0.05 * rng.standard_normal(120)
    truth = 10 + 0.05 * np.arange(120, 128) + pattern[np.arange(120, 128) % 4]
    f = E.ets(y, 8, 4)
    assert np.abs(f[:, 1] - truth).max() < 0.4
    assert (f[:, 0] < f[:, 1]).all() and (f[:, 1] < f[:, 2]).all()
    a = E.arima(10 + 0.5 * np.sin(t / 5) + 0.01 * rng.standard_normal(120), 4, 1)
    assert a.shape == (4, 3) and (a[:, 0] < a[:, 2]).all()
