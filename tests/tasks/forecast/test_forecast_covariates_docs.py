"""docs/forecast.md's covariate numbers are the recorded ones (benchmarks/results/forecast_covariates.json)."""

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]


def _section() -> str:
    text = (ROOT / "docs" / "forecast.md").read_text()
    start = text.index("## Past, future-known and static covariates")
    return text[start : text.index("\n## ", start + 1)]


def _row(section: str, label: str) -> list[str]:
    line = next(x for x in section.splitlines() if x.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip().strip("|").split("|")[1:]]


def test_promotion_table_matches_the_json_and_meets_the_goal():
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_covariates.json").read_text())
    promo, section = rec["promo"], _section()
    labels = {
        "none": "no covariates",
        "past": "`--covariates promo` (past only)",
        "future": "`--future-covariates promo`",
    }
    maes = {}
    for variant, label in labels.items():
        runs = [r for r in promo["runs"] if r["variant"] == variant]
        assert [r["seed"] for r in runs] == [0, 1, 2]
        # metrics.json's MAE is the MAE of backtest.csv recomputed by the script
        for r in runs:
            assert np.isclose(r["mae"], r["mae_from_backtest_csv"], rtol=1e-4)
        maes[variant] = np.array([r["mae"] for r in runs])
        mean, per_seed, cpu = _row(section, label)
        assert mean == f"{maes[variant].mean():.3f}"
        assert per_seed == " / ".join(f"{m:.3f}" for m in maes[variant])
        assert cpu == " / ".join(f"{r['cpu_time_s']:.0f}" for r in runs)
    ratio = maes["future"].mean() / maes["none"].mean()
    assert np.isclose(ratio, promo["mae_ratio_future_vs_none"])
    assert ratio <= 0.5 and (maes["future"] <= 0.5 * maes["none"]).all()  # the goal, on every seed
    assert f"cuts the MAE to\n  {ratio:.3f}" in section
    assert f"({maes['past'].mean() / maes['none'].mean():.3f} of it)" in section
    assert f"Seasonal naive: MAE {promo['runs'][0]['baselines_mae']['snaive']:.3f}" in section
    assert f"load average {rec['load_average_1min_at_end']}" in section


def test_static_table_matches_the_json():
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_covariates.json").read_text())
    m3, section = rec["m3_static"], _section()
    assert m3["seeds"] == [0, 1, 2] and m3["n_series"] == 200
    runs = {v: [r for r in m3["runs"] if r["variant"] == v] for v in ("none", "category")}
    change = [
        (b["best_val_loss"] - a["best_val_loss"]) / a["best_val_loss"]
        for a, b in zip(*runs.values())
    ]
    assert np.allclose(change, m3["val_loss_change_per_seed"])
    assert _row(section, "validation loss, no static covariate") == [
        f"{r['best_val_loss']:.5f}" for r in runs["none"]
    ]
    assert _row(section, "validation loss, `--static-covariates category`") == [
        f"{r['best_val_loss']:.5f} ({c:+.1%})" for r, c in zip(runs["category"], change)
    ]
    for variant, label in (
        ("none", "test sMAPE / MASE, no static covariate (information only)"),
        ("category", "test sMAPE / MASE, `--static-covariates category`"),
    ):
        assert _row(section, label) == [
            f"{r['test_smape']:.2f} / {r['test_mase']:.3f}" for r in runs[variant]
        ]
    better = sum(c < 0 for c in change)
    assert (
        f"lowers the validation loss on {['no', 'one', 'two', 'three'][better]} seeds of three"
        in section
    )
    assert f"(−{abs(np.mean(change)):.1%} on average" in section
