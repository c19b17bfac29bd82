"""Ensembles (median of members' quantiles; predict = the run's forecast), split-conformal calibration
(coverage on synthetic data with a known distribution), --quantiles validation and coverage_<level> keys."""

import json
import shutil
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import torch
from support import run_cli_subprocess

from grukit.errors import UserInputError
from grukit.tasks.forecast import calibrate as Q
from grukit.tasks.forecast import data as D
from grukit.tasks.forecast import report as R
from grukit.tasks.forecast import train as T
from grukit.tasks.forecast.ensemble import Ensemble
from grukit.tasks.forecast.model import ForecastNet

#: a small, fast forecasting run on the first 300 weather days
TINY = dict(
    target="temp_max",
    time_col="date",
    horizon=5,
    context=14,
    backtest=2,
    hidden=8,
    baselines="none",
)

LEVELS5 = (0.05, 0.1, 0.5, 0.9, 0.95)


# ----------------------------------------------------------------------------------- --quantiles
@pytest.mark.parametrize(
    "text,want",
    [
        ("0.1,0.5,0.9", (0.1, 0.5, 0.9)),
        ("0.05, 0.1, 0.5, 0.9, 0.95", LEVELS5),
        ("0.5", (0.5,)),
        ([0.025, 0.5, 0.975], (0.025, 0.5, 0.975)),
    ],
)
def test_parse_quantiles_accepts_symmetric_sets(text, want):
    assert Q.parse_quantiles(text) == want


@pytest.mark.parametrize(
    "text,message",
    [
        ("0.1,0.9", "the median 0.5"),
        ("0.9,0.5,0.1", "increasing"),
        ("0.1,0.5,0.5,0.9", "increasing"),
        ("0,0.5,1", "strictly between 0 and 1"),
        ("0.1,0.5,0.8", "symmetric pairs"),
        ("0.1,0.5,nope", "comma-separated numbers"),
        ("0.12345,0.5,0.87655", "4 decimals"),
        ("", "at least the median"),
    ],
)
def test_parse_quantiles_refuses_bad_sets(text, message):
    with pytest.raises(UserInputError, match=message):
        Q.parse_quantiles(text)


def test_cli_bad_quantiles_exit_2_one_line_no_files(tmp_path, cli):
    days = pd.date_range("2020-01-01", periods=120, freq="D")
    src = tmp_path / "d.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "y": np.sin(np.arange(120) / 5) + 2}).to_csv(
        src, index=False
    )
    out = tmp_path / "out"
    res = cli("forecast", "--csv", src, "--quantiles", "0.2,0.5,0.9", "--output-dir", out)
    err = res.err.strip().splitlines()
    assert res.code == 2 and len(err) == 1 and "symmetric pairs" in err[0], err
    assert not out.exists()


def test_coverage_keys_and_column_names():
    assert [Q.coverage_key(c) for _, _, c in Q.intervals(LEVELS5)] == ["coverage_90", "coverage_80"]
    assert Q.coverage_key(Q.intervals((0.025, 0.5, 0.975))[0][2]) == "coverage_95"
    assert [Q.column_name(q) for q in LEVELS5] == ["q5", "q10", "q50", "q90", "q95"]


# ----------------------------------------------------------------------------------- conformal
def test_offsets_use_the_finite_sample_rank():
    # one step, one 80% interval [0, 0]: the scores are |y| here; rank ⌈(n + 1)·0.8⌉ of the sorted scores
    y = np.array([[3.0], [1.0], [4.0], [1.5], [9.0], [2.0], [6.0], [5.0], [0.5]])  # n = 9 → rank 8
    pred = np.zeros((9, 1, 3))
    assert Q.conformal_offsets(pred, y, (0.1, 0.5, 0.9))[0, 0] == 6.0
    # n = 4 → rank ⌈4.0⌉ = 4: the largest; a score inside the interval is negative (narrowing)
    pred4 = np.stack([np.full((4, 1), -10.0), np.zeros((4, 1)), np.full((4, 1), 10.0)], -1)
    y4 = np.array([[1.0], [-2.0], [3.0], [0.0]])
    assert Q.conformal_offsets(pred4, y4, (0.1, 0.5, 0.9))[0, 0] == -7.0


@pytest.mark.parametrize("noise", ["gaussian", "laplace"])
def test_conformal_coverage_on_known_distributions(noise):
    """A quantile predictor with the right centre but wrong widths (too narrow at step 1, too wide at
    step 2, far too narrow at step 3) is calibrated on 1,000 draws; the held-out coverage of every interval
    at every step is within ±0.03 of its level (mean over 200 repetitions within ±0.01)."""
    rng = np.random.default_rng(0)
    sigma = np.array([1.0, 0.5, 3.0])  # the true spread of each step
    width = np.array([0.3, 2.0, 0.5])  # the predictor's (wrong) half-widths per level unit
    n_cal, n_test, reps = 1000, 4000, 200
    mu_scale = 5.0

    def draw(n):
        mu = rng.normal(scale=mu_scale, size=(n, 1))
        e = (
            rng.normal(size=(n, 3))
            if noise == "gaussian"
            else rng.laplace(scale=1 / np.sqrt(2), size=(n, 3))  # unit variance
        )
        y = mu + sigma * e
        z = np.array([-1.645, -1.0, 0.0, 1.0, 1.645])  # roughly the standard quantiles of LEVELS5
        pred = mu[..., None] + (width[:, None] * z[None, :])[None]  # (n, 3, 5)
        return pred, y

    covs = {0.9: [], 0.8: []}
    for _ in range(reps):
        pc, yc = draw(n_cal)
        pt, yt = draw(n_test)
        off = Q.conformal_offsets(pc, yc, LEVELS5)
        cal = Q.apply_offsets(pt, off, LEVELS5)
        for lo, hi, level in ((0, 4, 0.9), (1, 3, 0.8)):
            covs[level].append(((yt >= cal[..., lo]) & (yt <= cal[..., hi])).mean(0))  # per step
    for level, c in covs.items():
        c = np.asarray(c)  # (reps, 3)
        assert np.all(np.abs(c.mean(0) - level) < 0.01), (level, c.mean(0))
        assert np.mean(np.abs(c - level) <= 0.03) > 0.95, (level, np.abs(c - level).max())
    # uncalibrated, the same predictor is far off at steps 1 and 3 (so the test can fail)
    pt, yt = draw(n_test)
    raw = ((yt >= pt[..., 1]) & (yt <= pt[..., 3])).mean(0)
    assert raw[0] < 0.5 and raw[1] > 0.95 and raw[2] < 0.3


def test_offsets_match_the_true_quantiles_on_a_large_gaussian_sample():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(200_000, 1))
    pred = np.zeros((len(y), 1, 3))
    off = Q.conformal_offsets(pred, y, (0.1, 0.5, 0.9))[0, 0]
    # |y| ≤ off with probability 0.8 ⇔ off = the 0.9 quantile of N(0, 1)
    assert off == pytest.approx(NormalDist().inv_cdf(0.9), abs=0.01)


def test_apply_offsets_never_crosses_and_keeps_the_median():
    rng = np.random.default_rng(2)
    base = np.sort(rng.normal(size=(50, 4, 5)), axis=-1)
    off = rng.normal(scale=2.0, size=(4, 2))  # some intervals narrowed past the inner one
    out = Q.apply_offsets(base, off, LEVELS5)
    assert np.all(np.diff(out, axis=-1) >= 0)
    np.testing.assert_array_equal(out[..., 2], base[..., 2])
    wide = np.abs(off)
    wide[:, 0] += wide[:, 1]  # the outer interval widened at least as much: nothing to clamp
    out2 = Q.apply_offsets(base, wide, LEVELS5)  # widening only: exactly lo − off, hi + off
    np.testing.assert_allclose(out2[..., 0], base[..., 0] - wide[None, :, 0])
    np.testing.assert_allclose(out2[..., 4], base[..., 4] + wide[None, :, 0])
    np.testing.assert_allclose(out2[..., 3], base[..., 3] + wide[None, :, 1])


# ----------------------------------------------------------------------------------- ensemble
def test_ensemble_is_the_numpy_median_of_its_members():
    torch.manual_seed(0)
    for k in (2, 3, 4):
        ms = [ForecastNet(3, 2, 8, 4, hidden_size=6, quantiles=LEVELS5).eval() for _ in range(k)]
        past, fut = torch.randn(7, 8, 3), torch.randn(7, 4, 2)
        with torch.no_grad():
            ref = np.median(np.stack([m(past, fut).double().numpy() for m in ms]), axis=0)
        np.testing.assert_allclose(Ensemble(ms)(past, fut).numpy(), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="members differ"):
        Ensemble([ForecastNet(3, 2, 8, 4), ForecastNet(3, 2, 8, 5)])


def test_model_quantile_outputs_are_ordered_and_default_layout_unchanged():
    torch.manual_seed(0)
    m = ForecastNet(3, 2, 8, 4, hidden_size=6, quantiles=LEVELS5)
    out = m(torch.randn(9, 8, 3), torch.randn(9, 4, 2))
    assert out.shape == (9, 4, 5) and bool((out.diff(dim=-1) > 0).all())
    assert ForecastNet(3, 2, 8, 4).head[-1].out_features == 4 * 3


@pytest.fixture(scope="module")
def ens_run(tmp_path_factory):
    """A 3-member ensemble with five quantile levels on a 300-day weather slice (few epochs)."""
    root = tmp_path_factory.mktemp("ens")
    data = root / "w.csv"
    D.load_builtin("weather").iloc[:300].to_csv(data, index=False)
    out = root / "run"
    res = run_cli_subprocess(
        "forecast",
        "--csv",
        data,
        "--target",
        "temp_max",
        "--horizon",
        5,
        "--context",
        14,
        "--backtest",
        2,
        "--epochs",
        2,
        "--hidden",
        8,
        "--baselines",
        "naive",
        "--ensemble",
        3,
        "--quantiles",
        "0.05,0.1,0.5,0.9,0.95",
        "--no-conformal",
        "--no-select",  # the ensemble itself: its members' median
        "--output-dir",
        out,
    )
    assert res.code == 0, res.err[-2000:]
    return out, data


def test_ensemble_run_holds_every_member_and_forecasts_their_median(ens_run, tmp_path):
    out, data = ens_run
    man = json.loads((out / "ensemble.json").read_text())
    assert man["members"] == [
        "model.safetensors",
        "member-1/model.safetensors",
        "member-2/model.safetensors",
    ]
    assert man["seeds"] == [0, 1, 2] and man["conformal"] is False
    df = pd.read_csv(data)
    cols = ["q5", "q10", "q50", "q90", "q95"]
    # each member alone (its own model file, no manifest there) → numpy median over members
    each = _each_member(out, df, cols, 3, tmp_path)
    fc = pd.read_csv(out / "forecast.csv")
    np.testing.assert_allclose(fc[cols].to_numpy(), np.median(np.stack(each), axis=0), rtol=2e-5)
    assert not np.allclose(each[0], each[1])  # the members differ (different seeds)


def test_ensemble_predict_equals_the_run_forecast(ens_run, tmp_path, cli):
    out, data = ens_run
    pred = tmp_path / "pred"
    assert (
        cli(
            "forecast",
            "predict",
            "--checkpoint",
            out,
            "--csv",
            data,
            "--output-dir",
            pred,
        ).code
        == 0
    )
    a, b = pd.read_csv(pred / "forecast.csv"), pd.read_csv(out / "forecast.csv")
    assert (
        list(a.columns)
        == list(b.columns)
        == ["series", "time", "step", "q5", "q10", "q50", "q90", "q95"]
    )
    np.testing.assert_allclose(a.iloc[:, 3:].to_numpy(), b.iloc[:, 3:].to_numpy(), rtol=1e-5)


def test_ensemble_metrics_report_every_interval_coverage(ens_run):
    out, _ = ens_run
    m = json.loads((out / "metrics.json").read_text())
    bt = pd.read_csv(out / "backtest.csv")
    assert m["ensemble"] == 3 and m["quantiles"] == list(LEVELS5)
    for key, lo, hi in (
        ("coverage_80", "gru_q10", "gru_q90"),
        ("coverage_90", "gru_q5", "gru_q95"),
    ):
        inside = ((bt["actual"] >= bt[lo]) & (bt["actual"] <= bt[hi])).mean()
        assert m["model"][key] == pytest.approx(inside)
        assert key in m["baselines"]["naive"]


def test_conformal_run_moves_the_intervals_not_the_median(tmp_path):
    df = D.load_builtin("weather").iloc[:300]
    # the GRU's own intervals (with model selection on, this short series' source is a statistical
    # model's, whose intervals calibration does not touch)
    kw = dict(TINY, epochs=2, select=False)
    plain = R.backtest_run(df, output_dir=tmp_path / "a", conformal=False, **kw)
    cal = R.backtest_run(df, output_dir=tmp_path / "b", conformal=True, **kw)
    np.testing.assert_allclose(cal.forecast["q50"], plain.forecast["q50"], rtol=1e-6)
    assert not np.allclose(cal.forecast["q90"], plain.forecast["q90"])
    off = np.asarray(json.loads((tmp_path / "b" / "ensemble.json").read_text())["offsets"])
    assert off.shape == (5, 1) and cal.metrics["conformal"] is True
    # the recorded offsets are the finite-sample quantiles of the scores on the validation windows,
    # recomputed here from the member's raw output
    w = cal.calibration_windows
    with torch.no_grad():
        z = cal.model.members[0](
            torch.from_numpy(w["past"]), torch.from_numpy(w["future"])
        ).double()
    y = w["target"]
    for h in range(5):
        s = np.sort(np.maximum(z[:, h, 0].numpy() - y[:, h], y[:, h] - z[:, h, 2].numpy()))
        n = len(s)
        assert off[h, 0] == pytest.approx(s[int(np.ceil((n + 1) * 0.8)) - 1], rel=1e-6, abs=1e-9)
    assert (tmp_path / "b" / "forecast.csv").is_file()
    pd.testing.assert_frame_equal(
        R.predict_table(tmp_path / "b", df).reset_index(drop=True),
        cal.forecast.reset_index(drop=True),
        check_exact=False,
        rtol=1e-6,
    )


def test_ensemble_resume_continues_every_member_from_its_own_folder(tmp_path, monkeypatch):
    """--resume on an ensemble run: each member continues from its own last.ckpt (member 0 from the run
    folder, member k from member-<k>/), a member that had not started trains from scratch, and the
    resumed forecast is the median of the resumed members."""
    df = D.load_builtin("weather").iloc[:300]
    kw = dict(TINY, patience=None, ensemble=3, conformal=False, select=False)
    out = tmp_path / "run"
    R.backtest_run(df, output_dir=out, epochs=2, **kw)
    shutil.rmtree(out / "member-2")  # as if the run had been killed before member 2 started
    before = {k: json.loads(_member_log(out, k)) for k in (0, 1)}
    seen = []
    fit_run = T.fit_run

    def spy(*a, **k):
        seen.append((k["run"].path, k["resume"]))
        return fit_run(*a, **k)

    monkeypatch.setattr(T, "fit_run", spy)
    res = R.backtest_run(
        df, resume=out, epochs=3, **{k: v for k, v in kw.items() if k != "ensemble"}
    )
    # what each member resumed from: the run itself, member-1's own folder, nothing for member 2
    got = [(Path(p), None if r is None else Path(r)) for p, r in seen]
    assert got == [(out, out), (out / "member-1", out / "member-1"), (out / "member-2", None)]
    for k in (0, 1):  # continued: one more epoch on top of the two already run
        after = json.loads(_member_log(out, k))
        assert after["epochs"] == before[k]["epochs"] + 1 == 3, (k, before[k], after)
    assert json.loads(_member_log(out, 2))["epochs"] == 3  # trained from scratch, to 3 epochs
    cols = ["q10", "q50", "q90"]
    each = _each_member(out, df, cols, 3, tmp_path)
    np.testing.assert_allclose(
        res.forecast[cols].to_numpy(), np.median(np.stack(each), axis=0), rtol=2e-5
    )


def _member_log(run, k):
    """{"epochs": how many training epochs member k's log.csv records} as JSON text."""
    folder = run if k == 0 else run / f"member-{k}"
    log = pd.read_csv(folder / "log.csv")
    return json.dumps({"epochs": int(log["epoch"].nunique())})


def _each_member(run, df, cols, k, tmp_path):
    """Each of the run's k members' forecast alone (member 0 copied out of the run, so that predict does
    not read the run's manifest and combine the members)."""
    shutil.copy(run / "model.safetensors", tmp_path / "member0.safetensors")
    each = [R.predict_table(tmp_path / "member0.safetensors", df)[cols].to_numpy()]
    return each + [R.predict_table(run / f"member-{j}", df)[cols].to_numpy() for j in range(1, k)]
