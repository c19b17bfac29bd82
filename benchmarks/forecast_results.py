"""Run `grukit forecast` on the built-in datasets and record the numbers in benchmarks/results/forecast.json.

    python benchmarks/forecast_results.py [--seeds 0 1 2] [--datasets weather stocks] [--note TEXT]

Each run is the documented command (docs/forecast.md) (`grukit forecast`, `grukit forecast --dataset stocks`) plus `--seed` and an
`--output-dir` under runs/. Wall time and CPU time (user + sys of the child) are measured around the whole
command, start-up included. Results for the same (dataset, seed) replace older ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "forecast.json"


def _run(dataset: str, seed: int) -> dict:
    out = ROOT / "runs" / f"bench-forecast-{dataset}-seed{seed}"
    cmd = ["grukit", "forecast"] + ([] if dataset == "weather" else ["--dataset", dataset])
    if seed:
        cmd += ["--seed", str(seed)]
    exe = Path(sys.executable).with_name("grukit")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([str(exe), *cmd[1:], "--output-dir", str(out)], check=True, cwd=ROOT)
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
        "command": " ".join(cmd),
        "wall_time_s": round(wall, 1),
        "cpu_time_s": round(cpu, 1),
        "load_average_1min_after": round(os.getloadavg()[0], 1),
        "horizon": m["horizon"],
        "context": m["context"],
        "season_length": m["season_length"],
        "backtest_origins": m["backtest_origins"],
        "stride": m["stride"],
        "series": m["series"],
        "epochs_run": m["epochs_run"],
        "best_epoch": m["best_epoch"],
        "model": gru,
        "baselines": m["baselines"],
        "gru_beats_on_mase": wins,
        **({"per_series": m["per_series"]} if "per_series" in m else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--datasets", nargs="+", default=["weather", "stocks"])
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    rec = json.loads(OUT.read_text()) if OUT.is_file() else {}
    runs = {(r["dataset"], r["seed"]): r for r in rec.get("runs", [])}
    for d in args.datasets:
        for s in args.seeds:
            runs[(d, s)] = _run(d, s)
            print(
                json.dumps(
                    {
                        k: runs[(d, s)][k]
                        for k in (
                            "dataset",
                            "seed",
                            "wall_time_s",
                            "cpu_time_s",
                            "gru_beats_on_mase",
                        )
                    }
                ),
                flush=True,
            )
    import torch

    rec = {
        "task": "forecast",
        "metric": "rolling-origin backtest on the last origins of each series (stride = horizon for weather, "
        "3 months for stocks); mae, rmse on the data scale; mase = mae / in-sample MAE of the "
        "seasonal-naive forecast (m from the frequency) over the part before the first origin; "
        "coverage_80 = share of actuals inside the 0.1-0.9 band; averaged over origins and steps, "
        "then over series",
        "machine": (
            args.note
            or rec.get("machine")
            or f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores shared with other "
            f"jobs, torch {torch.__version__}, 1 torch thread"
        ),
        "runs": [runs[k] for k in sorted(runs, key=lambda k: (k[0] != "weather", k[0], k[1]))],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
