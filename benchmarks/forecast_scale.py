"""Memory and time of `grukit forecast` on big synthetic panels: benchmarks/results/forecast_scale.json.

    python benchmarks/forecast_scale.py --sizes 1000 10000            # CSV and parquet, recorded
    nice python benchmarks/forecast_scale.py --sizes 100000 --formats parquet --no-record

The panel: N positive series × 200 integer steps, y = 10 + (i mod 7) + 3·sin(2π·t/7) + N(0, 0.5²) (seed 0),
written as CSV and parquet in a temporary folder. Each size runs, as a child process under
``/usr/bin/time -v``,

    grukit forecast --data P --id-col id --time-col t --target y --horizon 14 --backtest 1 --epochs 1
        --baselines none --no-select

and records its peak RSS, wall time, CPU time (user + system), the 1-minute load average before it, the
training time (``wall_time_s`` of the run's fit, from the run folder's metrics) and, for comparison, the
time ``pandas.read_csv`` (or ``pandas.read_parquet``) takes on the same file in a separate child (the
fastest of 3 reads). "rest" = wall − training: reading, checks, windows, prediction, writing.

The machine is shared, so wall times follow the load; the process CPU times do much less, and each run
also records them, measured inside the child (:data:`CHILD`): ``train_cpu_s`` (the Lightning fit,
``grukit.train.fit``: the training epochs and their validation pass), ``predict_net_cpu_s`` (the
network's passes of prediction: ``Ensemble.forward`` over the calibration, backtest and future
windows), ``import_cpu_s`` (Python, torch, Lightning and grukit imported, before the command starts)
and ``rest_cpu_s`` = CPU − training; ``data_cpu_s`` = rest − network prediction − imports: reading,
checks, windows, scaling, origins, metrics, writing. ``pandas_read_cpu_s`` is the reader's process CPU
time (the fastest of 3 reads).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: the child that runs the command: process CPU time of the imports, the fit and the network's prediction
#: passes, written as JSON to $GRUKIT_SCALE_TIMES (the imports come first here; they are counted in
#: "rest" wherever they happen)
CHILD = """
import json, os, sys, time
cpu = time.process_time
t0 = cpu()
import torch, lightning.pytorch  # noqa: F401
import grukit.tasks.forecast.train as T
from grukit.tasks.forecast.ensemble import Ensemble
from grukit.cli import main
acc = {"import_cpu_s": cpu() - t0, "train_cpu_s": 0.0, "predict_net_cpu_s": 0.0}

def timed(fn, key):
    def run(*a, **k):
        t = cpu()
        try:
            return fn(*a, **k)
        finally:
            acc[key] += cpu() - t
    return run

T.fit_run = timed(T.fit_run, "train_cpu_s")
Ensemble.forward = timed(Ensemble.forward, "predict_net_cpu_s")
sys.argv = ["grukit", *sys.argv[1:]]
try:
    main()
finally:
    acc["command_cpu_s"] = cpu() - t0
    with open(os.environ["GRUKIT_SCALE_TIMES"], "w") as f:
        json.dump(acc, f)
"""
OUT = ROOT / "benchmarks" / "results" / "forecast_scale.json"
STEPS = 200


def make_panel(n: int, folder: Path) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    t = np.tile(np.arange(STEPS, dtype=np.int64), n)
    i = np.repeat(np.arange(n), STEPS)
    y = 10 + (i % 7) + 3 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.5, n * STEPS)
    ids = np.char.add("s", np.arange(n).astype(str))[i]
    table = pa.table({"id": ids, "t": t, "y": np.round(y, 3)})
    paths = {"csv": folder / f"panel-{n}.csv", "parquet": folder / f"panel-{n}.parquet"}
    pcsv.write_csv(table, paths["csv"], pcsv.WriteOptions(quoting_style="none"))
    pq.write_table(table, paths["parquet"])
    return paths


def timed_child(code: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run ``code`` under /usr/bin/time -v: wall seconds, peak RSS bytes, return code, stderr tail."""
    t0 = time.perf_counter()
    p = subprocess.run(
        ["/usr/bin/time", "-v", *code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", p.stderr))
    return {
        "stdout": p.stdout,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_bytes": int(m.group(1)) * 1024 if m else -1,
        "rc": p.returncode,
        "stderr_tail": p.stderr[-600:] if p.returncode else "",
    }


def train_seconds(run_root: Path) -> float | None:
    """``train_time_s`` (the fit) from the run folder's metrics.json."""
    f = run_root / "metrics.json"
    if not f.is_file():
        return None
    return round(float(json.loads(f.read_text())["train_time_s"]), 2)


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = re.search(r"Model name:\s*(.+)", out)
        cores = re.search(r"^CPU\(s\):\s*(\d+)", out, re.M)
        return f"{name.group(1).strip() if name else '?'} ({cores.group(1) if cores else '?'} CPUs)"
    except OSError:
        return "unknown"


def record(rows: list[dict]) -> None:
    """Merge ``rows`` into the results file (a run of the same size and format is replaced)."""
    old = json.loads(OUT.read_text()) if OUT.exists() else {}
    keys = {(x["series"], x["format"]) for x in rows}
    runs = [r for r in old.get("runs", []) if (r["series"], r["format"]) not in keys] + rows
    OUT.write_text(
        json.dumps(
            {
                "cpu": cpu_name(),
                "command": "grukit forecast --data P --id-col id --time-col t --target y "
                "--horizon 14 --backtest 1 --epochs 1 --baselines none --no-select",
                "seed": 0,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "note": "2 CPUs shared with other work: wall times vary with the load "
                "(load_avg_1min_before each run; pandas' time is the fastest of 3 reads); "
                "peak RSS does not. *_cpu_s: process CPU time (user + system) measured inside the "
                "child: train_cpu_s the Lightning fit, predict_net_cpu_s the network's prediction "
                "passes (Ensemble.forward), import_cpu_s Python + torch + Lightning + grukit "
                "imports, rest_cpu_s = cpu_s - train_cpu_s, data_cpu_s = rest - network - imports; "
                "pandas_read_cpu_s the reader's CPU time (fastest of 3)",
                "runs": sorted(runs, key=lambda r: (r["format"], r["series"])),
            },
            indent=1,
        )
        + "\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000, 100000])
    ap.add_argument("--formats", nargs="+", default=["csv", "parquet"])
    ap.add_argument("--no-record", action="store_true")
    a = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="grukit-scale-") as tmp:
        for n in a.sizes:
            paths = make_panel(n, Path(tmp))
            for fmt in a.formats:
                p = paths[fmt]
                reader = "read_csv" if fmt == "csv" else "read_parquet"
                load = round(os.getloadavg()[0], 2)
                base = timed_child(  # the fastest of 3 reads (the machine is shared)
                    [
                        sys.executable,
                        "-c",
                        "import time, pandas as pd\nbest, best_cpu = 1e9, 1e9\nfor _ in range(3):\n"
                        "    t, c = time.perf_counter(), time.process_time()\n"
                        f"    pd.{reader}({str(p)!r})\n"
                        "    best = min(best, time.perf_counter() - t)\n"
                        "    best_cpu = min(best_cpu, time.process_time() - c)\n"
                        "print(best, best_cpu)",
                    ],
                    env,
                )
                run_root = Path(tmp) / f"run-{n}-{fmt}"
                times_file = Path(tmp) / f"times-{n}-{fmt}.json"
                env_k = {**env, "GRUKIT_SCALE_TIMES": str(times_file)}
                cmd = [
                    sys.executable, "-c", CHILD, "forecast", "--data", str(p),
                    "--id-col", "id", "--time-col", "t", "--target", "y", "--horizon", "14",
                    "--backtest", "1", "--epochs", "1", "--baselines", "none", "--no-select",
                    "--output-dir", str(run_root),
                ]  # fmt: skip
                r = timed_child(cmd, env_k)
                train = train_seconds(run_root)
                tm = json.loads(times_file.read_text()) if times_file.is_file() else {}
                read_wall, read_cpu = (float(x) for x in base["stdout"].split()[-2:])
                rest_cpu = r["cpu_s"] - tm["train_cpu_s"] if tm else None
                cpu_cols = (
                    {
                        "train_cpu_s": round(tm["train_cpu_s"], 2),
                        "rest_cpu_s": round(rest_cpu, 2),
                        "import_cpu_s": round(tm["import_cpu_s"], 2),
                        "predict_net_cpu_s": round(tm["predict_net_cpu_s"], 2),
                        "data_cpu_s": round(
                            rest_cpu - tm["import_cpu_s"] - tm["predict_net_cpu_s"], 2
                        ),
                        "pandas_read_cpu_s": round(read_cpu, 2),
                        "rest_cpu_over_pandas_read_cpu": round(rest_cpu / read_cpu, 2),
                    }
                    if tm and rest_cpu is not None
                    else {}
                )
                rows.append(
                    {
                        "series": n,
                        "rows": n * STEPS,
                        "format": fmt,
                        "file_bytes": p.stat().st_size,
                        "peak_rss_gb": round(r["peak_rss_bytes"] / 1e9, 3),
                        "wall_s": r["wall_s"],
                        "cpu_s": r["cpu_s"],
                        "load_avg_1min_before": load,
                        "train_s": train,
                        "rest_s": None if train is None else round(r["wall_s"] - train, 2),
                        f"pandas_{reader}_s": round(read_wall, 2),
                        "pandas_read_peak_rss_gb": round(base["peak_rss_bytes"] / 1e9, 3),
                        "rest_over_pandas_read": None
                        if train is None
                        else round((r["wall_s"] - train) / read_wall, 2),
                        **cpu_cols,
                        "rc": r["rc"],
                        **({"error": r["stderr_tail"]} if r["rc"] else {}),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
                if not a.no_record:
                    record(rows)


if __name__ == "__main__":
    main()
