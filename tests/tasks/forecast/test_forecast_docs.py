"""The forecasting page's numbers (docs/forecast.md) are the recorded ones (benchmarks/results/forecast*.json)."""

import json
from pathlib import Path

import pytest

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
        "gru": "grukit default (one global GRU per sheet, model selection)",
        "gru_alone": "grukit GRU alone (the same run, before selection)",
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


def test_m3_seeds_table_matches_forecast_m3_json():
    """The seeds 0–2 table of docs/forecast.md (goal 2 of issue 31) is forecast_m3.json's "seeds"."""
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_m3.json").read_text())["seeds"]
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")[1:]]
        for line in _section().splitlines()
        if line.startswith("| seed")
    }

    def cell(v):
        return f"{v['smape']:.2f} / {v['mase']:.3f}"

    for s, r in rec["per_seed"].items():
        cells = rows[f"seed {s}"]
        assert cells[:3] == [
            cell(r["overall"]["gru"]),
            cell(r["overall"]["gru_alone"]),
            f"{r['grukit_cpu_s_total']:.0f}",
        ], (s, cells)
    after = rec["cpu_after_heldout_only_scoring"]["per_seed"]
    for s, r in after.items():
        assert r["forecasts_identical_to_the_run_above"], s
        assert rows[f"seed {s}"][3] == f"{r['grukit_cpu_s_total']:.0f}", (s, rows[f"seed {s}"])
    mean = rows[f"seeds {min(rec['seeds'])}–{max(rec['seeds'])}, mean"]
    assert mean[:2] == [cell(rec["mean"]["gru"]), cell(rec["mean"]["gru_alone"])], mean


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


#: the variants table of docs/forecast.md: row label → (key of forecast_m3.json, variant name)
VARIANT_ROWS = {
    "one model, uncalibrated (`--ensemble 1 --no-conformal`)": ("variants", "ensemble1"),
    "one model, calibrated (the default)": ("variants", "ensemble1+conformal"),
    "ensemble of 5, uncalibrated (`--ensemble 5 --no-conformal`)": ("variants", "ensemble5"),
    "ensemble of 5, calibrated (`--ensemble 5`)": ("variants", "ensemble5+conformal"),
    "one model, calibrated, `--static-covariates category`": (
        "variants_category",
        "ensemble1+conformal",
    ),
    "ensemble of 5, uncalibrated, `--static-covariates category`": (
        "variants_category",
        "ensemble5",
    ),
    "ensemble of 5, calibrated, `--static-covariates category`": (
        "variants_category",
        "ensemble5+conformal",
    ),
    "one model, calibrated, re-measured (round 3, `variants_round3`)": (
        "variants_round3",
        "ensemble1+conformal",
    ),
    "ensemble of 5, calibrated, re-measured (round 3, `variants_round3`)": (
        "variants_round3",
        "ensemble5+conformal",
    ),
    "ensemble of 5, the default output (`--ensemble 5`: calibrated, then the blend), round 3 "
    "(`variants_blend`)": ("variants_blend", "default"),
}


def test_m3_variants_table_matches_forecast_m3_json():
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_m3.json").read_text())
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")[1:]]
        for line in _section().splitlines()
        if line.startswith("| ")
    }
    checked = 0
    for label, (key, name) in VARIANT_ROWS.items():
        if key not in rec:  # the category run is optional; its rows must then be absent
            assert label not in rows
            continue
        v = rec[key]
        assert v["subset"] is None and v["seed"] == 0 and v["ensemble"] == 5
        sc = v["scores"][name]
        want = [sc["sheets"][s] for s in ("yearly", "quarterly", "monthly", "other")]
        for cell, x in zip(rows[label], [*want, sc["overall"]], strict=True):
            assert cell == f"{x['smape']:.2f} / {x['mase']:.3f} / {x['coverage_80']:.2f}", (
                label,
                cell,
            )
        checked += 1
        assert f"{v['grukit_cpu_s_total']:.0f} CPU s" in _section(), key
    assert checked >= 4
    # the single model of the variants run is the single model recorded at its time (member 0 = the
    # part-1 recipe), kept in the JSON since the kernel numerics change and model selection
    before = rec["one_model_before_kernel_change"]
    for s in ("yearly", "quarterly", "monthly", "other"):
        one = rec["variants"]["scores"]["ensemble1"]["sheets"][s]
        assert one["smape"] == pytest.approx(before["sheets"][s]["gru"]["smape"], rel=1e-9)
        # and the round-3 re-measure's member 0 is today's single model (seed 0, GRU alone)
        now = rec["variants_round3"]["scores"]["ensemble1"]["sheets"][s]
        today = rec["sheets"][s]["scores"]["gru_alone"]
        assert now["smape"] == pytest.approx(today["smape"], rel=1e-9), s
        assert now["mase"] == pytest.approx(today["mase"], rel=1e-9), s


def test_single_series_coverage_column_matches_forecast_json():
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast.json").read_text())
    for r in (r for r in rec["runs"] if r["seed"] == 0):
        line = next(
            x for x in _section().splitlines() if x.startswith("| ") and f"`{r['command']}`" in x
        )
        assert line.rstrip(" |").endswith(f"{r['model']['coverage_80']:.2f}"), line


def test_readme_ensemble_numbers_match_forecast_m3_json():
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_m3.json").read_text())
    sc = rec["variants_blend"]["scores"]["default"]  # what --ensemble 5 returns (with the blend)
    readme = (ROOT / "README.md").read_text()
    assert f"**{sc['overall']['smape']:.2f}** / {sc['overall']['mase']:.3f}" in readme
    covs = [sc["sheets"][s]["coverage_80"] for s in ("yearly", "quarterly", "monthly", "other")]
    assert f"covering {min(covs):.2f}–{max(covs):.2f} per sheet" in readme


def test_readme_tour_row_matches_the_results():
    """The README's forecasting row: the M3 one-model numbers (seed 0 and the mean over seeds 0–2) and
    the goal-1 geometric mean are the recorded ones."""
    m3 = json.loads((ROOT / "benchmarks" / "results" / "forecast_m3.json").read_text())
    dflt = json.loads((ROOT / "benchmarks" / "results" / "forecast_defaults.json").read_text())
    row = next(
        x for x in (ROOT / "README.md").read_text().splitlines() if x.startswith("| forecasting |")
    )
    one, mean = m3["overall"]["gru"], m3["seeds"]["mean"]["gru"]
    assert f"sMAPE **{one['smape']:.2f}** / MASE **{one['mase']:.3f}**" in row
    assert f"mean over seeds 0–2 {mean['smape']:.2f} / {mean['mase']:.3f}" in row
    g = dflt["summary"]["datasets"]["geomean_ratio_to_best_statsforecast"]
    assert f"MASE **{g:.3f}** × the best statsforecast model's" in row


def test_readme_options_table_matches_the_results():
    """The README's table of forecast options and their measured effects, against the recorded runs."""
    readme = (ROOT / "README.md").read_text()
    rows = {
        line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("| `--")
    }
    results = ROOT / "benchmarks" / "results"
    m3 = json.loads((results / "forecast_m3.json").read_text())
    one = m3["variants"]["scores"]["ensemble1"]
    one_cal = m3["variants"]["scores"]["ensemble1+conformal"]
    ens = m3["variants"]["scores"]["ensemble5+conformal"]
    cat = m3["variants_category"]["scores"]
    row = rows["`--ensemble 5`"]
    for x in (one, ens):
        assert f"{x['overall']['smape']:.2f}" in row and f"{x['overall']['mase']:.3f}" in row, row
    before = m3["one_model_before_kernel_change"]["grukit_cpu_s_total"]
    assert f"{m3['variants']['grukit_cpu_s_total']:.0f} against {before:.0f}" in row
    sheets = ("yearly", "quarterly", "monthly", "other")
    row = rows["`--conformal` (the default; `--no-conformal` turns it off)"]
    before = [one["sheets"][s]["coverage_80"] for s in sheets]
    after = [one_cal["sheets"][s]["coverage_80"] for s in sheets]
    assert f"{min(before):.2f}–{max(before):.2f} → {min(after):.2f}–{max(after):.2f}" in row, row
    assert f"yearly {before[0]:.2f} → {after[0]:.2f}" in row, row
    fc = {
        (r["dataset"], r["seed"]): r
        for r in json.loads((results / "forecast.json").read_text())["runs"]
    }
    q = fc[("weather-quantiles90", 0)]["model"]
    row = rows["`--quantiles 0.05,0.1,0.5,0.9,0.95`"]
    assert f"covering {q['coverage_90']:.2f}" in row, row
    assert f"{fc[('weather', 0)]['model']['mase']:.3f} → {q['mase']:.3f}" in row, row
    promo = json.loads((results / "forecast_covariates.json").read_text())["promo"]
    s = promo["summary"]
    row = rows["`--future-covariates promo`"]
    assert f"MAE {s['none']['mae_mean']:.3f} → {s['future']['mae_mean']:.3f}" in row, row
    assert f"({promo['mae_ratio_future_vs_none']:.2f}×)" in row, row
    assert f"`--covariates`: {s['past']['mae_mean']:.3f}" in row, row
    row = rows["`--static-covariates category`"]
    c5, c1 = cat["ensemble5+conformal"]["overall"], cat["ensemble1"]["overall"]
    assert f"sMAPE {ens['overall']['smape']:.2f} → {c5['smape']:.2f}" in row, row
    assert f"MASE {ens['overall']['mase']:.3f} → {c5['mase']:.3f}" in row, row
    assert f"{one['overall']['smape']:.2f} → {c1['smape']:.2f}" in row, row


def _check_defaults_row(section: str, name: str, r: dict) -> None:
    """The docs row ``| name | ...`` of a forecast_defaults.json data set: its test MASE per model, the ratio
    to the best statsforecast model and whether it beats the trivial forecasts."""
    line = next(x for x in section.splitlines() if x.startswith(f"| {name} |"))
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    t = r["test_mase"]
    want = [
        f"{t[k]:.3f}" if k in t else ""
        for k in ("default", "naive", "snaive", "ets", "theta", "arima")
    ]
    assert [c.strip("*") for c in cells[2:8]] == want, (name, cells)
    assert cells[8] == f"{r['ratio_to_best_statsforecast']:.3f}", (name, cells)
    assert cells[9] == ("yes" if r["beats_trivial"] else "no"), (name, cells)


def test_defaults_table_matches_forecast_defaults_json():
    """docs/forecast.md's "never loses to a trivial forecast" table is benchmarks/results/forecast_defaults.json."""
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_defaults.json").read_text())
    section = _section()
    done = rec["datasets"]
    assert len(done) >= 6
    for name, r in done.items():
        _check_defaults_row(section, name, r)
    s = rec["summary"]["datasets"]
    assert f"geometric mean {s['geomean_ratio_to_best_statsforecast']:.3f}" in section


def test_fresh_held_out_table_matches_forecast_defaults_json():
    """docs/forecast.md's fresh held-out check (statsmodels data sets) is forecast_defaults.json's
    "fresh_held_out_check"."""
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_defaults.json").read_text())
    fresh = rec["fresh_held_out_check"]
    section = _section()
    assert len(fresh["datasets"]) >= 6
    for name, r in fresh["datasets"].items():
        assert name not in rec["datasets"]  # never one of the data sets the rule was made on
        _check_defaults_row(section, name, r)
    s = fresh["summary"]
    assert f"fresh geometric mean {s['geomean_ratio_to_best_statsforecast']:.3f}" in section


def test_second_fresh_held_out_table_matches_forecast_defaults_json():
    """docs/forecast.md's second fresh held-out check (pmdarima's data sets) is forecast_defaults.json's
    "fresh_held_out_check_2", none of whose data sets the rule was chosen on."""
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_defaults.json").read_text())
    fresh = rec["fresh_held_out_check_2"]
    section = _section()
    assert len(fresh["datasets"]) >= 6
    seen = set(rec["datasets"]) | set(rec["fresh_held_out_check"]["datasets"])
    seen |= set(rec["development"]["datasets"])
    for name, r in fresh["datasets"].items():
        assert name not in seen
        _check_defaults_row(section, name, r)
    s = fresh["summary"]
    assert f"second fresh geometric mean {s['geomean_ratio_to_best_statsforecast']:.3f}" in section


def test_development_numbers_match_forecast_defaults_json():
    """The small-panel rule's development-window numbers quoted in docs/forecast.md."""
    dev = json.loads((ROOT / "benchmarks" / "results" / "forecast_defaults.json").read_text())[
        "development"
    ]
    section = _section()
    new, old = dev["summary"]["frozen: selection.choose_small"], dev["summary"]["current"]
    assert f"development geometric mean {new['geomean_ratio_to_best_statsforecast']:.3f}" in section
    assert f"previous rule's {old['geomean_ratio_to_best_statsforecast']:.3f}" in section
    assert f"behind trivial on {len(new['behind_trivial'])} of {new['datasets']}" in section
    assert f"{len(old['behind_trivial'])} of {old['datasets']} for the previous rule" in section


def test_m3_selection_subset_table_matches_forecast_m3_json():
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_m3.json").read_text())
    sub = rec["selection_subset150"]
    assert sub["subset"] == 150 and sub["seed"] == 0
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")[1:]]
        for line in _section().splitlines()
        if line.startswith("| subset: ")
    }
    labels = {
        "gru": "subset: grukit default (model selection)",
        "gru_alone": "subset: grukit GRU alone (same run)",
        "ets": "subset: AutoETS",
        "theta": "subset: AutoTheta",
    }
    for key, label in labels.items():
        want = [
            sub["sheets"][s]["scores"][key] for s in ("yearly", "quarterly", "monthly", "other")
        ]
        for cell, v in zip(rows[label], [*want, sub["overall"][key]], strict=True):
            assert cell == f"{v['smape']:.2f} / {v['mase']:.3f} / {v['coverage_80']:.2f}", (
                label,
                cell,
            )
    assert f"{sub['grukit_cpu_s_total']:.0f} CPU s" in _section()


def test_big_panel_memory_matches_forecast_scale_json():
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_scale.json").read_text())
    runs = {(r["format"], r["series"]): r for r in rec["runs"] if r["rc"] == 0}
    text = " ".join(_section().split())
    for fmt in ("csv", "parquet"):
        a, b = runs[(fmt, 10000)], runs[(fmt, 50000)]
        growth = (b["peak_rss_gb"] - a["peak_rss_gb"]) * 1e9 / (b["rows"] - a["rows"])
        assert f"{a['peak_rss_gb']:.2f} GB" in text and f"{b['peak_rss_gb']:.2f} GB" in text
        assert f"{growth:.0f} bytes per row" in text, (fmt, growth)
        assert f"{runs[(fmt, 100000)]['peak_rss_gb']:.2f} GB" in text
    # the time outside training against pandas' reading of the same file, at 100k series
    csv, pq = runs[("csv", 100000)], runs[("parquet", 100000)]
    assert (
        f"{csv['rest_s']:.0f} s against {csv['pandas_read_csv_s']:.1f} s at 100k series from CSV "
        f"({csv['rest_over_pandas_read']:.1f}×)"
    ) in text
    assert (
        f"{pq['rest_s']:.0f} s against {pq['pandas_read_parquet_s']:.1f} s from parquet "
        f"({pq['rest_over_pandas_read']:.0f}×" in text
    )


def test_round3c_development_numbers_match_forecast_defaults_json():
    """Round 3c's development-window numbers quoted in docs/forecast.md, and its pick: the incumbent."""
    dev = json.loads((ROOT / "benchmarks" / "results" / "forecast_defaults.json").read_text())[
        "development_round3c"
    ]
    section = _section()
    inc = "frozen: selection.choose_small"
    assert dev["picked"] == inc  # the objective kept choose_small: the default did not change
    for name, v in dev["summary"].items():
        if name == inc or name in (
            "half-trivial+GRU",
            "median5",
            "always-scombo",
            "mean4-trivial+GRU",
        ):
            label = "`choose_small`" if name == inc else f"`{name}`"
            want = (
                f"{label} {v['geomean_ratio_to_best_statsforecast']:.3f}, behind trivial on "
                f"{len(v['behind_trivial'])} of {v['datasets']}"
            )
            assert want in section, want
    best = min(v["geomean_ratio_to_best_statsforecast"] for v in dev["summary"].values())
    assert best > 1.05  # "no rule meets the geometric-mean goal on these windows" (the docs say so)
    fewest = min(len(v["behind_trivial"]) for v in dev["summary"].values())
    assert f"the fewest behind trivial: {fewest} of {len(dev['datasets'])}" in section


def test_third_fresh_held_out_table_matches_forecast_defaults_json():
    """docs/forecast.md's third fresh held-out check is forecast_defaults.json's "fresh_held_out_check_3",
    none of whose data sets any rule was scored or chosen on before."""
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_defaults.json").read_text())
    fresh = rec["fresh_held_out_check_3"]
    section = _section()
    assert len(fresh["datasets"]) >= 6
    seen = set(rec["datasets"]) | set(rec["fresh_held_out_check"]["datasets"])
    seen |= set(rec["fresh_held_out_check_2"]["datasets"]) | set(rec["development"]["datasets"])
    seen |= set(rec["development_round3c"]["datasets"])
    for name, r in fresh["datasets"].items():
        assert name not in seen
        _check_defaults_row(section, name, r)
    s = fresh["summary"]
    assert f"third fresh geometric mean {s['geomean_ratio_to_best_statsforecast']:.3f}" in section


def test_pre_selection_table_points_to_the_default_outputs():
    """The single-series table (forecast.json, the GRU alone before model selection) names the default
    output's MASE on the same data sets: forecast_defaults.json's."""
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_defaults.json").read_text())
    text = _section()
    para = text[text.index("## Measured: single series and small panels") :].split("\n\n")[1]
    for name in ("weather", "stocks", "airline-passengers", "daily-total-female-births", "shampoo"):
        assert f"{name} {rec['datasets'][name]['test_mase']['default']:.3f}" in para, name


def test_readme_tour_row_third_fresh_check():
    """The README's forecasting row quotes the third fresh check's geometric mean and losses."""
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_defaults.json").read_text())
    s = rec["fresh_held_out_check_3"]["summary"]
    row = next(
        x for x in (ROOT / "README.md").read_text().splitlines() if x.startswith("| forecasting |")
    )
    n, lost = s["datasets"], len(s["losing_to_trivial"])
    assert f"on {n} more never scored before" in row
    assert f"{s['geomean_ratio_to_best_statsforecast']:.3f} ×, behind naive on {lost}" in row


def test_big_panel_cpu_times_match_forecast_scale_json():
    """The process CPU times outside training (imports, network, data path) that docs/forecast.md quotes
    are those of the results file."""
    rec = json.loads((ROOT / "benchmarks" / "results" / "forecast_scale.json").read_text())
    runs = {(r["format"], r["series"]): r for r in rec["runs"] if r["rc"] == 0}
    text = " ".join(_section().split())
    csv, pq = runs[("csv", 100000)], runs[("parquet", 100000)]
    assert (
        f"{csv['rest_cpu_s']:.1f} CPU s against pandas' {csv['pandas_read_cpu_s']:.1f} from CSV "
        f"({csv['rest_cpu_over_pandas_read_cpu']:.1f}×)"
    ) in text
    assert (
        f"{pq['rest_cpu_s']:.1f} CPU s against pandas' {pq['pandas_read_cpu_s']:.2f} from parquet "
        f"({pq['rest_cpu_over_pandas_read_cpu']:.0f}×)"
    ) in text
    assert (
        f"took {pq['import_cpu_s']:.1f} s, the network's prediction passes "
        f"{pq['predict_net_cpu_s']:.1f} s"
    ) in text
    assert f"{pq['data_cpu_s']:.1f} s; at 1k series" in text
    for fmt in ("csv", "parquet"):  # the split adds up
        r = runs[(fmt, 100000)]
        parts = r["import_cpu_s"] + r["predict_net_cpu_s"] + r["data_cpu_s"]
        assert abs(parts - r["rest_cpu_s"]) < 0.05
        assert abs(r["rest_cpu_s"] + r["train_cpu_s"] - r["cpu_s"]) < 0.05
