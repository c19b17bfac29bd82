"""Run `grukit forecast` on the built-in and the shared CSV datasets; record the numbers in
benchmarks/results/forecast.json.

    python benchmarks/forecast_results.py [--seeds 0 1 2] [--datasets weather stocks airline-passengers ...]

Each run is the documented command (docs/forecast.md) plus `--seed` (when not 0) and an `--output-dir` under runs/. The CSV files
are found in `$GRUKIT_DATA/timeseries/`. Wall time and CPU time (user + sys of the child) are measured around
the whole command, start-up included. Results for the same (dataset, seed) replace older ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "forecast.json"
#: dataset → the arguments after `grukit forecast` ("$TS" = $GRUKIT_DATA/timeseries)
COMMANDS = {
    "weather": [],
    "weather-ensemble5": ["--ensemble", "5"],
    "weather-no-conformal": ["--no-conformal"],
    "weather-quantiles90": ["--quantiles", "0.05,0.1,0.5,0.9,0.95"],
    "stocks": ["--dataset", "stocks"],
    "airline-passengers": ["--csv", "$TS/airline-passengers.csv"],
    "daily-total-female-births": ["--csv", "$TS/daily-total-female-births.csv"],
    "shampoo": ["--csv", "$TS/shampoo.csv", "--date-format", "%y-%m"],
}


def _run(dataset: str, seed: int) -> dict:
    out = ROOT / "runs" / f"bench-forecast-{dataset}-seed{seed}"
    args = list(COMMANDS[dataset]) + (["--seed", str(seed)] if seed else [])
    ts = str(Path(os.environ.get("GRUKIT_DATA", ROOT.parent / "shared" / "data")) / "timeseries")
    real = [a.replace("$TS", ts) for a in args]
    shutil.rmtree(out, ignore_errors=True)  # this script's own run folder, rewritten
    exe = Path(sys.executable).with_name("grukit")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([str(exe), "forecast", *real, "--output-dir", str(out)], check=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    m = json.loads((out / "metrics.json").read_text())
    gru = m["model"]
    wins = {
        b: gru["mase"] < v["mase"] for b, v in m["baselines"].items() if v.get("mase") is not None
    }
    return {
        "dataset": dataset,
        "seed": seed,
        "command": " ".join(["grukit", "forecast", *args]).replace(
            "$TS", "$GRUKIT_DATA/timeseries"
        ),
        "wall_time_s": round(wall, 1),
        "cpu_time_s": round(cpu, 1),
        "load_average_1min_after": round(os.getloadavg()[0], 1),
        **{
            k: m.get(k)
            for k in (
                "horizon",
                "context",
                "season_length",
                "backtest_origins",
                "stride",
                "series",
                "n_series_scored",
                "n_series_skipped",
                "scaling",
                "seasonal",
                "log_scale",
                "epochs_run",
                "best_epoch",
                "best_val_loss",
            )
        },
        "model": gru,
        "baselines": m["baselines"],
        "gru_beats_on_mase": wins,
        **({"per_series": m["per_series"]} if "per_series" in m else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--datasets", nargs="+", default=list(COMMANDS), choices=list(COMMANDS))
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    rec = json.loads(OUT.read_text()) if OUT.is_file() else {}
    runs = {(r["dataset"], r["seed"]): r for r in rec.get("runs", []) if r["dataset"] in COMMANDS}
    for d in args.datasets:
        for s in args.seeds:
            runs[(d, s)] = _run(d, s)
            print(
                json.dumps(
                    {
                        k: runs[(d, s)][k]
                        for k in ("dataset", "seed", "cpu_time_s", "gru_beats_on_mase")
                    }
                    | {"mase": runs[(d, s)]["model"]["mase"]}
                ),
                flush=True,
            )
    import torch

    order = list(COMMANDS)
    rec = {
        "task": "forecast",
        "metric": "rolling-origin backtest on the last origins of each series (stride = horizon; 3 months "
        "for stocks); mae, rmse on the data scale; mase = mae / in-sample MAE of the seasonal-naive "
        "forecast (m from the frequency) over the part before the first origin; smape = mean "
        "200|y-f|/(|y|+|f|); coverage_80 = share of actuals inside the 0.1-0.9 band; averaged over "
        "origins and steps, then over series. Baselines: statsforecast Naive, SeasonalNaive, AutoETS, "
        "AutoTheta on the last 500 points before each origin",
        "machine": (
            args.note
            or f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores shared with other "
            f"jobs, torch {torch.__version__}, 1 torch thread; cpu_time_s = user+sys CPU of the grukit "
            f"process, start-up included"
        ),
        "runs": [runs[k] for k in sorted(runs, key=lambda k: (order.index(k[0]), k[1]))],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
