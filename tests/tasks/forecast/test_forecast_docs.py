"""The forecasting page's numbers (docs/forecast.md) are the recorded ones (benchmarks/results/forecast*.json)."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _section() -> str:
    return (ROOT / "docs" / "forecast.md").read_text()


def test_m3_table_matches_forecast_m3_json():
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_m3.json").read_text())
    assert rec["subset"] is None and rec["seed"] == 0
    assert rec["overall"]["gru"]["n_series"] == 3003
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")[1:]]
        for line in _section().splitlines()
        if line.startswith("| ")
    }
    labels = {
        "gru": "grukit GRU (one global model per sheet)",
        "ets": "AutoETS",
        "theta": "AutoTheta",
        "snaive": "SeasonalNaive",
        "naive": "Naive",
    }
    for key, label in labels.items():
        cells = rows[label]
        sheets = [
            rec["sheets"][s]["scores"][key] for s in ("yearly", "quarterly", "monthly", "other")
        ]
        for cell, v in zip(cells, [*sheets, rec["overall"][key]]):
            assert cell == f"{v['smape']:.2f} / {v['mase']:.3f} / {v['coverage_80']:.2f}", (
                label,
                cell,
            )
    assert f"{rec['grukit_cpu_s_total']:.0f} CPU s" in _section()


def test_single_series_table_matches_forecast_json():
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast.json").read_text())
    section = _section()
    runs = [r for r in rec["runs"] if r["seed"] == 0]
    assert {r["dataset"] for r in runs} >= {
        "weather",
        "stocks",
        "airline-passengers",
        "daily-total-female-births",
        "shampoo",
    }
    for r in runs:
        line = next(
            x for x in section.splitlines() if x.startswith("| ") and f"`{r['command']}`" in x
        )
        assert f"{r['model']['mase']:.3f}" in line, line
        for b in ("naive", "snaive", "ets", "theta"):
            assert f"{r['baselines'][b]['mase']:.3f}" in line, (b, line)
