"""What future-known and static covariates buy: benchmarks/results/forecast_covariates.json.

    python benchmarks/forecast_covariates.py                  # both parts, seeds 0 1 2
    python benchmarks/forecast_covariates.py --parts promo --seeds 0 --no-record

promo: a synthetic promotion panel (6 stores, 500 days each; units = 10 + store + 2·sin(2π·day/7) +
5·promo + N(0, 0.3²), promo a random 20% of days, seed 0), forecast 14 days ahead at 5 backtest origins by
three `grukit forecast` commands that differ only in what they know of the promotions: nothing, the past
promotions (`--covariates promo`) or the promotion plan (`--future-covariates promo`, the file then holds
14 plan rows per store after the last `units` value, with `units` empty). Each command is run as a child
process with default model options; its MAE and MASE are read from its metrics.json.

m3: M3 monthly, a fixed subset (every 7th series, 200; benchmarks/forecast_m3.py's), the competition
protocol, with and without `--static-covariates category`, seeds 0 1 2: the validation loss (what options
are chosen on) and, for information only, the test sMAPE/MASE.

CPU seconds are user + sys of the child (promo) or process time around `fit` (m3), one torch thread.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "forecast_covariates.json"
WORK = ROOT / "runs" / "bench-covariates"
STORES, DAYS, H, EFFECT, SHARE, NOISE = 6, 500, 14, 5.0, 0.2, 0.3
COMMON = [
    "--id-col",
    "store",
    "--time-col",
    "date",
    "--target",
    "units",
    "--horizon",
    str(H),
    "--backtest",
    "5",
    "--baselines",
    "naive,snaive",
]
VARIANTS = {  # name → (data file, extra options)
    "none": ("history.csv", []),
    "past": ("history.csv", ["--covariates", "promo"]),
    "future": ("with_plan.csv", ["--future-covariates", "promo"]),
}


def promo_panel(seed: int = 0) -> pd.DataFrame:
    """STORES stores × (DAYS + H) days; the last H days of each store are the plan (``units`` empty)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2023-01-01", periods=DAYS + H, freq="D")
    parts = []
    for i in range(STORES):
        t = np.arange(len(dates))
        promo = (rng.random(len(t)) < SHARE).astype(int)
        y = 10 + i + 2 * np.sin(2 * np.pi * t / 7) + EFFECT * promo + rng.normal(0, NOISE, len(t))
        y[DAYS:] = np.nan
        parts.append(
            pd.DataFrame(
                {"store": f"s{i}", "date": dates.strftime("%Y-%m-%d"), "units": y, "promo": promo}
            )
        )
    return pd.concat(parts, ignore_index=True)


def run_promo(seeds: list[int]) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    df = promo_panel(0)
    df.to_csv(WORK / "with_plan.csv", index=False, float_format="%.6g")
    df[df["units"].notna()].to_csv(WORK / "history.csv", index=False, float_format="%.6g")
    exe = Path(sys.executable).with_name("grukit")
    runs = []
    for seed in seeds:
        for name, (data, extra) in VARIANTS.items():
            out = WORK / f"{name}-seed{seed}"
            shutil.rmtree(out, ignore_errors=True)  # this script's own run folder, rewritten
            args = ["forecast", "--csv", str(WORK / data), *COMMON, *extra, "--seed", str(seed)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([str(exe), *args, "--output-dir", str(out)], check=True, cwd=ROOT)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            m = json.loads((out / "metrics.json").read_text())
            bt = pd.read_csv(out / "backtest.csv")
            runs.append(
                {
                    "variant": name,
                    "seed": seed,
                    "command": " ".join(["grukit", *args]).replace(str(WORK) + "/", ""),
                    "mae": m["model"]["mae"],
                    "mae_from_backtest_csv": float(np.mean(np.abs(bt["actual"] - bt["gru_q50"]))),
                    "mase": m["model"]["mase"],
                    "coverage_80": m["model"]["coverage_80"],
                    "baselines_mae": {b: v["mae"] for b, v in m["baselines"].items()},
                    "epochs_run": m["epochs_run"],
                    "cpu_time_s": round(
                        (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1
                    ),
                    "wall_time_s": round(wall, 1),
                }
            )
            print(
                f"promo {name} seed {seed}: MAE {runs[-1]['mae']:.3f} "
                f"({runs[-1]['cpu_time_s']:.0f} CPU s)",
                flush=True,
            )
    summary = {}
    for name in VARIANTS:
        maes = [r["mae"] for r in runs if r["variant"] == name]
        summary[name] = {"mae_mean": float(np.mean(maes)), "mae_per_seed": maes}
    return {
        "data": f"{STORES} stores x {DAYS} days (+{H} plan rows per store in with_plan.csv); units = 10 + "
        f"store + 2 sin(2 pi day/7) + {EFFECT:g} promo + N(0, {NOISE:g}^2); promo on a random "
        f"{SHARE:.0%} of days; data seed 0",
        "runs": runs,
        "summary": summary,
        "mae_ratio_future_vs_none": summary["future"]["mae_mean"] / summary["none"]["mae_mean"],
        "mae_ratio_future_vs_past": summary["future"]["mae_mean"] / summary["past"]["mae_mean"],
    }


def run_m3_static(subset: int, seeds: list[int]) -> dict:
    spec = importlib.util.spec_from_file_location(
        "forecast_m3", ROOT / "benchmarks" / "forecast_m3.py"
    )
    assert spec is not None and spec.loader is not None
    m3 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m3)
    h, m = m3.SHEETS["monthly"]
    df = m3.load_sheet("monthly", subset)
    ids, train, test = m3.split(df)
    runs = []
    for seed in seeds:
        for name, options in (("none", {}), ("category", {"static_covariates": ["category"]})):
            run_dir = ROOT / "runs" / f"bench-covariates-m3-{name}-seed{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)
            fc, meta = m3.run_grukit("monthly", df, h, m, seed, options, run_dir)
            s = m3.score(train, test, fc, m)
            runs.append(_m3_row(name, seed, meta, s))
            print(f"m3 monthly/{subset}: {runs[-1]}", flush=True)
    val = {n: [r["best_val_loss"] for r in runs if r["variant"] == n] for n in ("none", "category")}
    return {
        "command": f"python benchmarks/forecast_m3.py --sheets monthly --subset {subset} --seed S "
        "[--static-covariates category] (the same fit, called in-process)",
        "subset": subset,
        "seeds": seeds,
        "n_series": len(ids),
        "note": "the validation series are a random 20% drawn with the seed, so validation losses "
        "compare within a seed, not across seeds",
        "runs": runs,
        "val_loss_change_per_seed": [(b - a) / a for a, b in zip(val["none"], val["category"])],
    }


def _m3_row(name: str, seed: int, meta: dict, s: dict) -> dict:
    return {
        "variant": name,
        "seed": seed,
        "best_val_loss": meta["best_val_loss"],
        "best_epoch": meta["best_epoch"],
        "epochs_run": meta["epochs_run"],
        "test_smape": s["smape"],
        "test_mase": s["mase"],
        "test_coverage_80": s["coverage_80"],
        "cpu_s": meta["cpu_s"],
    }


def _cpu_model() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["promo", "m3"], choices=["promo", "m3"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--m3-subset", type=int, default=200)
    ap.add_argument("--m3-seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    import grukit

    torch.set_num_threads(1)
    rec: dict = json.loads(OUT.read_text()) if OUT.is_file() else {}
    rec.update(
        {
            "task": "forecast",
            "benchmark": "future-known covariates (synthetic promotions) and static covariates (M3 category)",
            "command": " ".join(["python", *sys.argv]),
            "cpu": _cpu_model(),
            "torch": torch.__version__,
            "torch_threads": 1,
            "grukit_version": grukit.__version__,
        }
    )
    t0 = time.perf_counter()
    if "promo" in args.parts:
        rec["promo"] = run_promo(args.seeds)
    if "m3" in args.parts:
        rec["m3_static"] = run_m3_static(args.m3_subset, args.m3_seeds)
    rec["load_average_1min_at_end"] = round(os.getloadavg()[0], 1)
    rec["wall_time_s"] = round(time.perf_counter() - t0, 1)
    if args.no_record:
        print(json.dumps(rec, indent=2))
        return
    OUT.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
