"""Metrics by hand, and the statsforecast baselines against statsforecast's models called directly."""

import math

import numpy as np
import pytest

from grukit.errors import UserInputError
from grukit.tasks.forecast import evaluate as E

Y = np.array([1.0, 3, 2, 5, 4, 6, 5, 8])


def test_mase_scale_smape_and_metrics_by_hand():
    # |y_t − y_{t−2}| = 1, 2, 2, 1, 1, 2 → 1.5
    assert E.mase_scale(Y, 2) == pytest.approx(1.5)
    assert E.mase_scale(Y, 1) == pytest.approx(13 / 7)  # |2|,|1|,|3|,|1|,|2|,|1|,|3|
    assert E.mase_scale(Y[:2], 4) == pytest.approx(2.0)  # too short for m = 4: lag 1
    assert math.isnan(E.mase_scale(np.array([3.0, 3.0]), 1))  # a zero scale is undefined
    # 200·|100 − 50| / 150 = 66.67; 200·|10 − 10| / 20 = 0; both zero → 0
    assert E.smape(np.array([100.0, 10, 0]), np.array([50.0, 10, 0])) == pytest.approx(200 / 9)
    actual = np.array([9.0, 7, 14])
    q = np.array([[7.0, 8, 9], [6, 8, 10], [7, 8, 12]])  # point 8: errors 1, 1, 6; 14 is outside
    m = E.point_metrics(actual, q, E.mase_scale(Y, 2))
    assert m["mae"] == pytest.approx(8 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(38 / 3))
    assert m["mase"] == pytest.approx((8 / 3) / 1.5)
    assert m["smape"] == pytest.approx(
        np.mean([200 * 1 / 17, 200 * 1 / 15, 200 * 6 / 22]), rel=1e-12
    )
    assert m["coverage_80"] == pytest.approx(2 / 3)


def test_average_and_best_marking():
    rows = {
        "a": {"mae": 1.0, "rmse": 2.0, "mase": 0.5, "smape": 9.0, "coverage_80": 0.6},
        "b": {"mae": 2.0, "rmse": 1.0, "mase": 0.7, "smape": 8.0, "coverage_80": 0.85},
    }
    assert E.best_per_metric(rows) == {
        "mae": "a",
        "rmse": "b",
        "mase": "a",
        "smape": "b",
        "coverage_80": "b",
    }
    nan_row = {"mae": float("nan"), "rmse": 3.0, "mase": 0.6, "smape": 1.0, "coverage_80": 0.9}
    avg = E.average([rows["a"], rows["b"], nan_row])
    assert avg["mae"] == pytest.approx(1.5) and avg["rmse"] == pytest.approx(2.0)


def test_parse_baselines():
    assert E.parse_baselines(None) == ["naive", "snaive", "ets", "theta"]
    assert E.parse_baselines("arima, naive") == ["arima", "naive"]
    assert E.parse_baselines("none") == [] and E.parse_baselines("") == []
    with pytest.raises(UserInputError, match="--baselines expects"):
        E.parse_baselines("naive,prophet")
    with pytest.raises(UserInputError, match="--baselines expects"):
        E.parse_baselines("none,naive")


def _series():
    rng = np.random.default_rng(0)
    t = np.arange(60)
    pattern = np.array([3.0, -1.0, 0.5, -2.5])
    a = 20 + 0.1 * t + pattern[t % 4] + 0.3 * rng.standard_normal(60)
    b = 50 * np.exp(0.01 * t[:37]) + rng.standard_normal(37)
    c = 5 + rng.standard_normal(23).cumsum() * 0.2 + 10
    return [a, b, c]


def test_naive_and_seasonal_naive_points_by_hand():
    ys = _series()
    out = E.statsforecast_baselines(ys, 6, 4, ["naive", "snaive"])
    for i, y in enumerate(ys):
        assert out["naive"][i, :, 1].tolist() == [y[-1]] * 6
        # seasonal naive m = 4: step k repeats y[T − 4 + (k − 1) mod 4]
        expected = [y[len(y) - 4 + (k % 4)] for k in range(6)]
        np.testing.assert_allclose(out["snaive"][i, :, 1], expected, rtol=0, atol=0)
        assert (out["naive"][i, :, 0] < out["naive"][i, :, 1]).all()


@pytest.mark.parametrize("name", ["naive", "snaive", "ets", "theta", "arima"])
def test_baselines_match_statsforecast_called_directly(name):
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, Naive, SeasonalNaive

    model = {
        "naive": lambda: Naive(),
        "snaive": lambda: SeasonalNaive(season_length=4),
        "ets": lambda: AutoETS(season_length=4),
        "theta": lambda: AutoTheta(season_length=4),
        "arima": lambda: AutoARIMA(season_length=4),
    }[name]
    ys = _series()
    out = E.statsforecast_baselines(ys, 5, 4, [name])[name]
    assert out.shape == (3, 5, 3)
    for i, y in enumerate(ys):  # the oracle: each model's own forecast() on one series at a time
        ref = model().forecast(y=y, h=5, level=[80])
        np.testing.assert_allclose(out[i, :, 1], ref["mean"], rtol=1e-6)
        np.testing.assert_allclose(out[i, :, 0], ref["lo-80"], rtol=1e-6)
        np.testing.assert_allclose(out[i, :, 2], ref["hi-80"], rtol=1e-6)
