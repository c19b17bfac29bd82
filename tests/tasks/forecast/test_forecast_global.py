"""The global model's data path: the cross-series window sampler, validation windows, per-series skipping,
and the M3 competition protocol against a hand-computed seasonal naive."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grukit.errors import UserInputError
from grukit.tasks.forecast import data as D
from grukit.tasks.forecast import report as R
from grukit.tasks.forecast import train as T
from grukit.tasks.forecast import windows as W
from grukit.tasks.forecast.config import SkippedSeriesWarning

M3 = Path(os.environ.get("GRUKIT_DATA", "")) / "m3"


def _spec(**kw):
    base = dict(time_col="t", target="y", freq="step", season_length=1, scaling="window", log=True)
    base.update(kw)
    return D.DataSpec(**base)


def _series(sid, n, start=1.0):
    y = start + np.arange(n, dtype=np.float64)
    return D.Series(sid, pd.Index(np.arange(n)), y, np.zeros((n, 0)))


def test_sampler_covers_every_origin_of_every_series_and_gathers_the_right_values():
    series = [_series("a", 30, 1.0), _series("b", 9, 100.0), _series("c", 4, 1000.0)]
    spec = _spec()
    train, val, info = W.split_windows(series, spec, C=6, H=3, seed=0)
    # ≤ 20 series: each one long enough holds out its last max(1, (T − H) // 10) full-target windows
    # a: T=30 → 27 full origins, 2 held out (25, 26, 27 → first 26); b: 6 → 1 (origin 6); c: 1 → too short
    assert info["val_series"] == 2 and info["val_windows"] == 3
    got = sorted(zip(train.sidx.tolist(), train.origins.tolist()))
    want = (
        [(0, o) for o in range(1, 26)]
        + [(1, o) for o in range(1, 6)]
        + [(2, o) for o in range(1, 4)]
    )
    assert got == want
    # held-out series train only on targets before their first validation origin
    past, future, target, tmask = train.collate([train.dataset()[i] for i in range(len(train))])
    for k, (i, o) in enumerate(zip(train.sidx, train.origins)):
        s = series[i]
        end = {0: 26, 1: 6, 2: 4}[int(i)]  # a and b are cut at their first validation origin
        n_obs = min(3, end - o)
        assert tmask[k].tolist() == [1.0] * n_obs + [0.0] * (3 - n_obs)
        lvl = np.log(s.y[o - 1])  # m = 1: the level is the last context value
        expected = np.log(s.y[o : o + n_obs]) - lvl
        np.testing.assert_allclose(target[k, :n_obs].numpy(), expected, rtol=1e-5, atol=1e-6)
        n_ctx = min(6, o)
        np.testing.assert_allclose(
            past[k, -n_ctx:, 0].numpy(), np.log(s.y[o - n_ctx : o]) - lvl, rtol=1e-5, atol=1e-6
        )
        assert past[k, :, 1].sum() == n_ctx  # observed flags
    vp = val.collate([val.dataset()[i] for i in range(len(val))])
    assert sorted(zip(val.sidx.tolist(), val.origins.tolist())) == [(0, 26), (0, 27), (1, 6)]
    assert vp[3].min() == 1  # validation targets are fully observed


def test_many_series_hold_out_a_share_and_the_rest_train_to_their_end():
    series = [_series(f"s{i}", 40) for i in range(50)]
    train, val, info = W.split_windows(series, _spec(), C=8, H=4, seed=0)
    assert info["val_series"] == 20  # max(20, 20% of 50)
    held = set(val.panel.series[j].id for j in np.unique(val.sidx))
    assert len(held) == 20
    last = {}
    for i, o in zip(train.sidx, train.origins):
        last[series[i].id] = max(last.get(series[i].id, 0), int(o))
    for s in series:
        if s.id in held:
            assert (
                last[s.id] < 40 - 4 - 3 + 1
            )  # before the held-out windows (36 full origins, 3 held)
        else:
            assert last[s.id] == 39  # trained up to the most recent point (partial targets masked)


def _table(lengths, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i, n in enumerate(lengths):
        t = np.arange(1, n + 1)
        y = 50 + 10 * i + 5 * np.sin(t * 2 * np.pi / 4) + rng.standard_normal(n)
        rows.append(pd.DataFrame({"series": f"s{i}", "time": t, "value": y}))
    return pd.concat(rows, ignore_index=True)


def test_short_series_are_skipped_with_one_warning_or_refused_when_strict(tmp_path):
    df = _table([30, 25, 5, 7, 12])  # horizon 4, backtest 1: need ≥ 6 points; s2 (5) is too short
    kw = dict(
        id_col="series",
        horizon=4,
        backtest=1,
        context=8,
        season_length=4,
        epochs=1,
        hidden=8,
        baselines=["naive"],
    )
    with pytest.warns(SkippedSeriesWarning, match=r"1 of 5 series .*'s2'") as rec:
        res = R.backtest_run(df, "value", "time", output_dir=tmp_path / "run", **kw)
    assert len([w for w in rec if w.category is SkippedSeriesWarning]) == 1
    m = res.metrics
    assert (m["n_series_scored"], m["n_series_skipped"], m["skipped_series"]) == (4, 1, ["s2"])
    assert sorted(m["per_series"]) == ["s0", "s1", "s3", "s4"]
    # s3 (7 points, 3 to train on) is shorter than the context: padded, trained and scored
    assert set(res.backtest["series"]) == {"s0", "s1", "s3", "s4"}
    assert {"smape", "mase", "coverage_80"} <= set(m["model"])
    with pytest.raises(UserInputError, match=r"1 of 5 series .*'s2'.*lower --horizon"):
        R.backtest_run(df, "value", "time", output_dir=tmp_path / "strict", strict=True, **kw)
    assert not (tmp_path / "strict").exists()


@pytest.mark.skipif(not (M3 / "m3_quarterly.csv").is_file(), reason="needs GRUKIT_DATA/m3")
def test_m3_protocol_against_hand_computed_seasonal_naive(tmp_path):
    df = pd.read_csv(M3 / "m3_quarterly.csv")
    ids = [str(i) for i in pd.unique(df["series"])[[0, 300, 700]]]
    df = df[df["series"].isin(ids)]
    res = R.backtest_run(
        df,
        "value",
        "time",
        id_col="series",
        horizon=8,
        backtest=1,
        epochs=1,
        hidden=8,
        baselines=["snaive"],
        output_dir=tmp_path / "m3",
        dataset="m3_quarterly",
    )
    m = res.metrics
    assert m["season_length"] == 4 and m["n_series_scored"] == 3 and m["n_series_skipped"] == 0
    smapes, mases = [], []
    for sid in ids:
        g = df[df["series"] == sid]
        train = g.loc[g["split"] == "train", "value"].to_numpy()
        test = g.loc[g["split"] == "test", "value"].to_numpy()
        assert len(test) == 8
        # seasonal naive from the end of train, written out: the last 4 quarters, twice
        snaive = np.array([train[-4], train[-3], train[-2], train[-1]] * 2)
        bt = res.backtest[res.backtest["series"] == sid].sort_values("step")
        np.testing.assert_allclose(bt["actual"], test, rtol=1e-12)
        np.testing.assert_allclose(bt["snaive"], snaive, rtol=1e-9)
        sm = np.mean(200 * np.abs(test - snaive) / (np.abs(test) + np.abs(snaive)))
        scale = np.mean(np.abs(train[4:] - train[:-4]))
        ma = np.mean(np.abs(test - snaive)) / scale
        assert m["per_series"][sid]["baselines"]["snaive"]["smape"] == pytest.approx(sm, rel=1e-9)
        assert m["per_series"][sid]["baselines"]["snaive"]["mase"] == pytest.approx(ma, rel=1e-9)
        smapes.append(sm)
        mases.append(ma)
    assert m["baselines"]["snaive"]["smape"] == pytest.approx(np.mean(smapes), rel=1e-9)
    assert m["baselines"]["snaive"]["mase"] == pytest.approx(np.mean(mases), rel=1e-9)
    # the GRU's forecast is of the same 8 test steps, from each series' own end
    assert len(res.backtest) == 24 and np.isfinite(res.backtest["gru_q50"]).all()


def test_series_scaling_uses_the_single_series_recipe_with_no_padding_and_no_observed_flag():
    # two series of 60 and 45 points, C=8, H=3; hand-computed from the recipe before the global model:
    # n = T − H − C + 1 full windows; the last max(H, n // 10) validate; training targets end before them
    series = [_series("a", 60, 5.0), _series("b", 45, 50.0)]
    spec = _spec(scaling="series")
    D.fit_scalers(series, spec, {s.id: len(s) for s in series})
    train, val, info = W.last_windows_split(series, spec, C=8, H=3)
    assert spec.observed_input is False and train.panel.past_features == 1
    # a: n = 50 → 5 validate (origins 53..57), train 8..50; b: n = 35 → 3 (origins 40..42), train 8..37
    assert sorted(zip(val.sidx.tolist(), val.origins.tolist())) == [
        *[(0, o) for o in range(53, 58)],
        *[(1, o) for o in range(40, 43)],
    ]
    assert sorted(zip(train.sidx.tolist(), train.origins.tolist())) == [
        *[(0, o) for o in range(8, 51)],
        *[(1, o) for o in range(8, 38)],
    ]
    assert info["val_windows"] == 8 and info["train_windows"] == 73
    past, future, target = train.collate([train.dataset()[i] for i in range(len(train))])
    for k, (i, o) in enumerate(zip(train.sidx, train.origins)):
        s, sc = series[i], spec.scalers[series[i].id]
        z = (np.log(s.y) - sc["y_mean"]) / sc["y_std"]
        np.testing.assert_allclose(past[k, :, 0].numpy(), z[o - 8 : o], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(target[k].numpy(), z[o : o + 3], rtol=1e-5, atol=1e-6)
        assert o + 3 <= {0: 53, 1: 40}[int(i)]  # no training target reaches the validation part


def test_the_single_series_recipe_is_not_used_for_window_scaling_short_or_many_series():
    assert W.last_windows_split([_series("a", 60)], _spec(), C=8, H=3) is None  # window scaling
    short = [_series("a", 60), _series("b", 15)]
    assert W.last_windows_split(short, _spec(scaling="series"), C=8, H=3) is None
    many = [_series(f"s{i}", 60) for i in range(21)]
    assert W.last_windows_split(many, _spec(scaling="series"), C=8, H=3) is None


def test_a_model_without_the_observed_flag_refuses_a_series_shorter_than_its_context():
    spec = _spec(scaling="series", observed_input=False)
    s = _series("a", 5)
    D.fit_scalers([s], spec, {"a": 5})
    with pytest.raises(UserInputError, match="'a' has 5 points; .* needs the last 8"):
        from grukit.tasks.forecast.ensemble import Ensemble
        from grukit.tasks.forecast.model import ForecastNet

        T.future_quantiles(Ensemble([ForecastNet(2, 0, 8, 3)]), [s], spec)
