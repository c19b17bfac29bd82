"""Does the default forecast ever lose to a trivial one? ``grukit forecast`` with default options (model
selection on) beside naive, seasonal naive and statsforecast's AutoETS / AutoTheta (/ AutoARIMA on the short
series) on the same backtest windows (issue 31, goal 1).

    python benchmarks/forecast_defaults.py                     # every data set → benchmarks/results/forecast_defaults.json
    python benchmarks/forecast_defaults.py --only shampoo airline --no-record

Each data set runs exactly what ``grukit forecast`` runs (:func:`grukit.tasks.forecast.report.run_forecast`:
the estimator's ``cross_validation`` with ``--backtest`` origins, the baselines fed the same histories, the
last ``baseline_history`` = 500 points before each origin). MASE per series and origin (scale: in-sample MAE
of the lag-m naive forecast on the history), the mean over series. The selection's validation numbers (MASE
of each candidate on the window before the first scored origin) are recorded beside the test numbers. The
ETT stand-in panel (the 7 columns of ETTh1 and ETTh2 cut into consecutive pieces of 700–960 hours, seed 0)
is made at run time from ``$GRUKIT_DATA/ett`` and never written (the data is CC BY-ND).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "forecast_defaults.json"
STAT = ("ets", "theta", "arima")


def data_dir() -> Path:
    return Path(os.environ.get("GRUKIT_DATA", ROOT.parent / "shared" / "data"))


def _csv(rel: str, time_col: str, target: str) -> pd.DataFrame:
    df = pd.read_csv(data_dir() / rel)
    return df.rename(columns={time_col: "ds", target: "y"})[["ds", "y"]]


def ett_panel(seed: int = 0) -> pd.DataFrame:
    """The 14 ETT series (7 columns × ETTh1/ETTh2) cut into consecutive pieces of 700–960 hours."""
    rng = np.random.default_rng(seed)
    parts = []
    for f in ("ETTh1", "ETTh2"):
        df = pd.read_csv(data_dir() / "ett" / f"{f}.csv")
        for col in [c for c in df.columns if c != "date"]:
            start, k = 0, 0
            while True:
                n = int(rng.integers(700, 961))
                if start + n > len(df):
                    break
                piece = df.iloc[start : start + n]
                parts.append(
                    pd.DataFrame({"id": f"{f}-{col}-{k}", "ds": piece["date"], "y": piece[col]})
                )
                start, k = start + n, k + 1
    return pd.concat(parts, ignore_index=True)


# name: (loader, options)
def datasets() -> dict:
    def ett(f):
        return lambda: _csv(f"ett/{f}.csv", "date", "OT")

    return {
        "airline-passengers": (
            lambda: _csv("timeseries/airline-passengers.csv", "Month", "Passengers"),
            dict(horizon=12, season_length=12, backtest=3, arima=True),
        ),
        "shampoo": (
            lambda: _csv("timeseries/shampoo.csv", "Month", "Sales"),
            dict(horizon=6, season_length=12, backtest=3, date_format="%y-%m", arima=True),
        ),
        "daily-total-female-births": (
            lambda: _csv("timeseries/daily-total-female-births.csv", "Date", "Births"),
            dict(horizon=7, season_length=7, backtest=5, arima=True),
        ),
        "daily-min-temperatures": (
            lambda: _csv("timeseries/daily-min-temperatures.csv", "Date", "Temp"),
            dict(horizon=14, season_length=7, backtest=5, arima=True),
        ),
        "weather": (None, dict(arima=True)),
        "stocks": (None, dict(arima=True)),
        "ETTh1-OT": (ett("ETTh1"), dict(horizon=48, season_length=24, backtest=5)),
        "ETTh2-OT": (ett("ETTh2"), dict(horizon=48, season_length=24, backtest=5)),
        "ETT-panel": (
            ett_panel,
            dict(horizon=48, season_length=24, backtest=1, id_col="id"),
        ),
    }


def run_one(name: str, loader, opts: dict, seed: int, select: bool) -> dict:
    import torch

    from grukit.tasks.forecast import report

    torch.set_num_threads(1)
    opts = dict(opts)
    base = ["naive", "snaive", "ets", "theta"] + (["arima"] if opts.pop("arima", False) else [])
    out_dir = ROOT / "runs" / f"bench-defaults-{name}-seed{seed}{'' if select else '-noselect'}"
    common = dict(
        baselines=base, seed=seed, select=select, output_dir=out_dir, overwrite=True, progress=False
    )
    t0, w0 = time.process_time(), time.perf_counter()
    if loader is None:
        res = report.run_builtin(name, **common)
    else:
        df = loader()
        res = report.backtest_run(
            df, "y", "ds", dataset=name, **{k: v for k, v in common.items()}, **opts
        )
    cpu = time.process_time() - t0
    m = res.metrics
    bases = {b: m["baselines"][b]["mase"] for b in base}
    best_stat = min(bases[b] for b in STAT if b in bases and np.isfinite(bases[b]))
    best_trivial = min(bases["naive"], bases["snaive"])
    d = m["model"]["mase"]
    sel = m.get("selection", {})
    return {
        "options": {**opts, "seed": seed, "select": select},
        "horizon": m["horizon"],
        "season_length": m["season_length"],
        "backtest_origins": m["backtest_origins"],
        "n_series_scored": m["n_series_scored"],
        "test_mase": {"default": d, **bases},
        "test_smape": {
            "default": m["model"].get("smape"),
            **{b: m["baselines"][b].get("smape") for b in base},
        },
        "default_coverage_80": m["model"].get("coverage_80"),
        "best_trivial_mase": best_trivial,
        "best_statsforecast_mase": best_stat,
        "ratio_to_best_statsforecast": d / best_stat,
        "beats_trivial": bool(d <= best_trivial),
        "selection_counts": sel.get("counts"),
        "validation_mase": sel.get("validation_mase"),
        "series_selected_on_validation": sel.get("series_selected_on_validation"),
        "cpu_s": round(cpu, 1),
        "wall_s": round(time.perf_counter() - w0, 1),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def print_markdown(rec: dict) -> None:
    """The docs/forecast.md table of a record (tests/tasks/forecast/test_forecast_docs.py checks it)."""
    print(
        "| data | h / m / origins | default | naive | snaive | AutoETS | AutoTheta | AutoARIMA | "
        "default / best statsforecast | ≤ better trivial | sources chosen (validation) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rec["datasets"].items():
        t = r["test_mase"]
        cells = [
            f"{t[k]:.3f}" if k in t else "" for k in ("naive", "snaive", "ets", "theta", "arima")
        ]
        d = f"{t['default']:.3f}"
        best = min(v for k, v in t.items() if k != "default")
        d = f"**{d}**" if t["default"] <= best else d
        src = ", ".join(f"{k} {v}" for k, v in (r["selection_counts"] or {}).items())
        print(
            f"| {name} | {r['horizon']} / {r['season_length']} / {r['backtest_origins']} | {d} | "
            + " | ".join(cells)
            + f" | {r['ratio_to_best_statsforecast']:.3f} | {'yes' if r['beats_trivial'] else 'no'} | "
            + f"{src} |"
        )
    s = rec["summary"]["datasets"]
    print(f"\ngeometric mean {s['geomean_ratio_to_best_statsforecast']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-select", action="store_true", help="the GRU alone (selection off)")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument(
        "--markdown", action="store_true", help="print the docs table of --out and stop"
    )
    args = ap.parse_args()
    if args.markdown:
        return print_markdown(json.loads(Path(args.out).read_text()))
    todo = datasets()
    names = args.only or list(todo)
    out = Path(args.out)
    rec = json.loads(out.read_text()) if out.is_file() else {}
    key = "datasets" if not args.no_select else "datasets_select_off"
    for name in names:
        loader, opts = todo[name]
        r = run_one(name, loader, opts, args.seed, not args.no_select)
        print(name, json.dumps(r), flush=True)
        if args.no_record:
            continue
        rec.setdefault(key, {})[name] = {**r, "command": " ".join(["python", *sys.argv])}
        done = rec[key]
        ratios = [v["ratio_to_best_statsforecast"] for v in done.values()]
        rec.update(
            task="forecast",
            benchmark="issue 31 goal 1: the default output against trivial and statsforecast models",
            cpu=_cpu_model(),
            torch_threads=1,
            metric="MASE per series and backtest origin (scale: in-sample MAE of the lag-m naive "
            "forecast on the history), mean over series; the baselines see the last 500 points",
        )
        rec.setdefault("summary", {})[key] = {
            "datasets": len(done),
            "geomean_ratio_to_best_statsforecast": float(np.exp(np.mean(np.log(ratios)))),
            "goal_geomean": 1.05,
            "beats_trivial_everywhere": all(v["beats_trivial"] for v in done.values()),
            "losing_to_trivial": [k for k, v in done.items() if not v["beats_trivial"]],
        }
        out.write_text(json.dumps(rec, indent=2) + "\n")


if __name__ == "__main__":
    main()
