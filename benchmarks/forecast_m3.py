"""grukit's global GRU forecaster on the M3 competition (3,003 series), beside the statsforecast baselines.

    python benchmarks/forecast_m3.py                       # all four sheets → benchmarks/results/forecast_m3.json
    python benchmarks/forecast_m3.py --sheets monthly --subset 200 --no-record   # the development loop
    python benchmarks/forecast_m3.py --baselines-only      # fill the baseline cache only
    python benchmarks/forecast_m3.py --static-covariates category   # M3's category as a static covariate
    python benchmarks/forecast_m3.py --ensemble 5 --variants   # ensemble/conformal variants, added to the JSON

With ``--variants`` one ``fit`` per sheet trains ``--ensemble K`` members (seeds seed .. seed+K−1; member 0 is
the single model) and scores, from that one run, the first k members for every k ≤ K, each uncalibrated and
calibrated (split conformal on the run's validation windows), and ``"default"``: what the estimator returns
with ``ensemble=K`` and default options (the K-member median, calibrated, then model selection: the blend).
They are written under ``"variants"`` (``"variants_<label>"``) of the JSON, beside the single model's
record, which is left as it is; each finished sheet is written at once (``"partial": true`` until the end). ``"validation"`` holds what the choices were
made on: the pinball loss of each k-member median on the validation windows, and the 80% coverage of the
calibrated intervals estimated by 2-fold cross-conformal on those windows (calibrate on half of the
validation series, count on the other half, and the other way round) — never the test values.

Protocol (the competition's, ``../shared/data/m3/SOURCE.md``): each series is fit on its ``train`` part and
its NF ``test`` values are forecast in one go from the end of train. grukit runs exactly what the CLI runs
(``grukit forecast --csv m3_<sheet>.csv --id-col series --time-col time --target value --horizon NF
--backtest 1``; one global model per sheet) through the Python API, with ``baselines=none``; the baselines
(Naive, SeasonalNaive, AutoETS, AutoTheta; AutoARIMA with ``--arima``) are computed here with statsforecast
on the same train parts. Their forecasts are deterministic, so they are cached (keyed by the sheet, the
subset, the model and the statsforecast version) under ``$GRUKIT_CACHE`` (default ``~/.cache/grukit``)
together with the CPU seconds they took; a cached value is reused and said to be so in the JSON.

Scores: sMAPE and MASE per series as defined in SOURCE.md (MASE scale: in-sample MAE of the lag-m naive
forecast on train, m = 1, 4, 12, 1), 80% coverage; a sheet's and the whole set's value = the plain mean over
series. grukit's CPU time is ``time.process_time()`` around its ``fit`` (training, backtest, forecast, run
folder), one torch thread.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "forecast_m3.json"
SHEETS = {  # horizon NF, season m (SOURCE.md)
    "yearly": (6, 1),
    "quarterly": (8, 4),
    "monthly": (18, 12),
    "other": (8, 1),
}
#: the --variants name of the default output (the blended, calibrated K-member forecast)
DEFAULT = "default"
PUBLISHED = {
    "source": "Makridakis & Hibon 2000; R. J. Hyndman's recalculation (Mcomp 'Comparisons' vignette), "
    "same sMAPE/MASE definitions as here",
    "all": {"theta": {"smape": 12.76, "mase": 1.39}, "forecastpro": {"smape": 13.06, "mase": 1.47}},
    "monthly": {"theta_paper_smape": 13.85, "theta_recalculated_smape": 13.94},
}


def m3_dir() -> Path:
    """``$GRUKIT_DATA/m3``, then ``~/.cache/grukit/data/m3`` (CONVENTIONS.md)."""
    cands = []
    if os.environ.get("GRUKIT_DATA"):
        cands.append(Path(os.environ["GRUKIT_DATA"]) / "m3")
    cands.append(Path.home() / ".cache" / "grukit" / "data" / "m3")
    for c in cands:
        if (c / "m3_monthly.csv").is_file():
            return c
    sys.exit(
        f"error: M3 data not found in {', '.join(map(str, cands))}; it comes from M3C.xls (see "
        f"../shared/data/m3/SOURCE.md)"
    )


def load_sheet(sheet: str, subset: int | None) -> pd.DataFrame:
    df = pd.read_csv(m3_dir() / f"m3_{sheet}.csv")
    if subset:
        ids = pd.unique(df["series"])
        step = max(1, len(ids) // subset)
        keep = set(ids[::step][:subset])  # a fixed, spread-out subset (every k-th series)
        df = df[df["series"].isin(keep)]
    return df.reset_index(drop=True)


def split(df: pd.DataFrame) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    ids, train, test = [], [], []
    for sid, g in df.groupby("series", sort=False):
        ids.append(str(sid))
        train.append(g.loc[g["split"] == "train", "value"].to_numpy(np.float64))
        test.append(g.loc[g["split"] == "test", "value"].to_numpy(np.float64))
    return ids, train, test


def _sf_version() -> str:
    import statsforecast

    return statsforecast.__version__


def baselines(sheet, subset, ids, train, h, m, names) -> tuple[dict, dict]:
    """{name: (N, h, 3)} and {name: {"cpu_s", "cached"}} — from the cache where it has them."""
    from grukit.tasks.forecast import evaluate as E

    cache = Path(os.environ.get("GRUKIT_CACHE", Path.home() / ".cache" / "grukit")) / "forecast_m3"
    cache.mkdir(parents=True, exist_ok=True)
    out, info = {}, {}
    for n in names:
        f = cache / f"{sheet}-{subset or 'all'}-{n}-statsforecast{_sf_version()}.npz"
        if f.is_file():
            z = np.load(f, allow_pickle=False)
            if list(z["ids"]) == ids:
                out[n] = z["fc"]
                info[n] = {"cpu_s": round(float(z["cpu_s"]), 1), "cached": True}
                continue
        t0 = time.process_time()
        out[n] = E.statsforecast_baselines(train, h, m, [n])[n]
        cpu = time.process_time() - t0
        tmp = f.with_name(f".tmp-{f.name}")
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=np.array(ids), fc=out[n], cpu_s=cpu)
        tmp.replace(f)
        info[n] = {"cpu_s": round(cpu, 1), "cached": False}
        print(f"  {sheet} {n}: {cpu:.1f} CPU s", flush=True)
    return out, info


def score(train, test, fc, m) -> dict:
    """Per-series sMAPE/MASE/coverage (fc (N, h, 3)) → plain means over series + per-series arrays."""
    from grukit.tasks.forecast import evaluate as E

    sm, ms, cov = [], [], []
    for y, a, q in zip(train, test, fc):
        sm.append(E.smape(a, q[:, 1]))
        ms.append(np.mean(np.abs(a - q[:, 1])) / E.mase_scale(y, m))
        cov.append(np.mean((a >= q[:, 0]) & (a <= q[:, 2])))
    ms = np.asarray(ms)
    return {
        "smape": float(np.mean(sm)),
        "mase": float(np.nanmean(ms)),
        "coverage_80": float(np.mean(cov)),
        "n_series": len(sm),
        "_smape": np.asarray(sm),
        "_mase": ms,
        "_cov": np.asarray(cov),
    }


def run_grukit(sheet, df, h, m, seed, options, out_dir) -> tuple[np.ndarray, dict]:
    import torch

    from grukit.tasks.forecast import report

    torch.set_num_threads(1)
    t0 = time.process_time()
    w0 = time.perf_counter()
    res = report.backtest_run(
        df,
        target="value",
        time_col="time",
        id_col="series",
        horizon=h,
        backtest=1,
        dataset=f"m3_{sheet}",
        output_dir=out_dir,
        seed=seed,
        baselines=[],
        **options,
    )
    cpu = time.process_time() - t0
    bt = res.backtest.sort_values(["series", "step"])
    order = {s: i for i, s in enumerate(pd.unique(df["series"].astype(str)))}
    n = len(order)
    fc = np.full((n, h, 3), np.nan)
    for sid, g in bt.groupby("series"):
        fc[order[str(sid)]] = g[["gru_q10", "gru_q50", "gru_q90"]].to_numpy()
    # the GRU alone (its own forecast before model selection) from the same run: rows follow backtest
    alone = np.full((n, h, 3), np.nan)
    raw = res.backtest_quantiles()
    for row, sid in zip(raw, pd.unique(res.backtest["series"].astype(str))):
        alone[order[sid]] = row
    meta = {
        "cpu_s": round(cpu, 1),
        "wall_s": round(time.perf_counter() - w0, 1),
        "epochs_run": res.metrics.get("epochs_run"),
        "best_epoch": res.metrics.get("best_epoch"),
        "best_val_loss": res.metrics.get("best_val_loss"),
        "n_series_scored": res.metrics.get("n_series_scored"),
        "n_series_skipped": res.metrics.get("n_series_skipped"),
        "context": res.metrics.get("context"),
        "options": res.metrics.get("options"),
        "run_folder": str(res.run.path),
        "selection": {
            k: v for k, v in (res.metrics.get("selection") or {}).items() if k != "source"
        },
        "_gru_alone": alone,
    }
    return fc, meta


def validation_report(res, ks) -> dict:
    """Pinball loss (z scale) of the k-member median on the validation windows, and the 2-fold
    cross-conformal coverage of each interval (calibrated on half the validation series, counted on the
    other half)."""
    import torch

    from grukit.tasks.forecast import calibrate as Q

    w = res.calibration_windows
    qs = res.model.quantiles
    past, fut = torch.from_numpy(w["past"]), torch.from_numpy(w["future"])
    z_all = res.model.members_z(past, fut)  # (K, N, H, Q)
    y, mask = w["target"].astype(np.float64), w["tmask"] > 0
    lv = np.asarray(qs)
    out = {}
    for k in ks:
        z = z_all[0] if k == 1 else np.median(z_all[:k], axis=0)
        d = y[..., None] - z
        pin = np.maximum(lv * d, (lv - 1) * d).mean(-1)
        folds = w["sidx"] % 2
        cov = {}
        for a in (0, 1):
            cal, ev = folds == a, folds != a
            off = Q.conformal_offsets(z[cal], y[cal], qs, mask=mask[cal])
            zc = Q.apply_offsets(z[ev], off, qs)
            for lo, hi, c in Q.intervals(qs):
                inside = (y[ev] >= zc[..., lo]) & (y[ev] <= zc[..., hi])
                raw = (y[ev] >= z[ev][..., lo]) & (y[ev] <= z[ev][..., hi])
                key = Q.coverage_key(c)
                cov.setdefault(key, []).append(inside[mask[ev]].mean())
                cov.setdefault(key + "_uncalibrated", []).append(raw[mask[ev]].mean())
        out[f"k{k}"] = {
            "val_pinball": float(pin[mask].mean()),
            "val_mae_z": float(np.abs(y - z[..., Q.median_index(qs)])[mask].mean()),
            **{key: float(np.mean(v)) for key, v in cov.items()},
        }
    return out


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    import platform

    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sheets", nargs="+", default=list(SHEETS), choices=list(SHEETS))
    ap.add_argument("--subset", type=int, default=None, help="every k-th series, this many")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arima", action="store_true", help="also AutoARIMA (~1,600 CPU s on monthly)")
    ap.add_argument("--baselines-only", action="store_true")
    ap.add_argument(
        "--grukit-only",
        action="store_true",
        help="score grukit alone (no baselines: for a quick regression check; implies --no-record)",
    )
    ap.add_argument("--no-record", action="store_true", help="print, do not write the results JSON")
    ap.add_argument(
        "--options", default="{}", help="JSON dict of extra options (ForecastOptions fields)"
    )
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument(
        "--record-key",
        default=None,
        help="write the record under this key of --out, keeping the file's other records",
    )
    ap.add_argument("--ensemble", type=int, default=1, help="members K (with --variants)")
    ap.add_argument(
        "--variants",
        action="store_true",
        help="score the 1..K-member ensembles, uncalibrated and conformal; add them to the JSON",
    )
    ap.add_argument(
        "--label",
        default=None,
        help="with --variants: record under 'variants_<label>' (e.g. other --options) instead of 'variants'",
    )
    ap.add_argument(
        "--static-covariates",
        default=None,
        help="comma-separated static covariate columns for grukit (M3 has 'category')",
    )
    args = ap.parse_args()
    if args.variants:
        return main_variants(args)
    names = ["naive", "snaive", "ets", "theta"] + (["arima"] if args.arima else [])
    if args.grukit_only:
        names, args.no_record = [], True
    options = json.loads(args.options)
    if args.static_covariates:
        options["static_covariates"] = [c for c in args.static_covariates.split(",") if c]
    rec_sheets, all_rows = {}, {k: [] for k in ["gru", "gru_alone", *names]}
    grukit_cpu = 0.0
    for sheet in args.sheets:
        h, m = SHEETS[sheet]
        df = load_sheet(sheet, args.subset)
        ids, train, test = split(df)
        print(f"{sheet}: {len(ids)} series, h={h}, m={m}", flush=True)
        base, base_info = baselines(sheet, args.subset, ids, train, h, m, names)
        scores = {n: score(train, test, base[n], m) for n in names}
        gmeta = None
        if not args.baselines_only:
            out_dir = ROOT / "runs" / f"bench-m3-{sheet}-{args.subset or 'all'}-seed{args.seed}"
            shutil.rmtree(out_dir, ignore_errors=True)  # this script's own run folder, rewritten
            fc, gmeta = run_grukit(sheet, df, h, m, args.seed, options, out_dir)
            grukit_cpu += gmeta["cpu_s"]
            alone = gmeta.pop("_gru_alone")
            scores = {"gru": score(train, test, fc, m), **scores}
            if gmeta["selection"].get("on"):
                scores["gru_alone"] = score(train, test, alone, m)
        for k, s in scores.items():
            all_rows[k].append(s)
        if gmeta and gmeta["selection"].get("on"):
            sel = gmeta["selection"]
            val = "  ".join(f"{k} {v:.3f}" for k, v in (sel.get("validation_mase") or {}).items())
            print(f"  validation MASE: {val}  weights {sel.get('weights') or {}}", flush=True)
        rec_sheets[sheet] = {
            "horizon": h,
            "season_length": m,
            "n_series": len(ids),
            "scores": {
                k: {x: s[x] for x in ("smape", "mase", "coverage_80")} for k, s in scores.items()
            },
            "grukit": gmeta,
            "baseline_cpu_s": base_info,
        }
        print(
            "  "
            + "  ".join(
                f"{k}: sMAPE {s['smape']:.2f} MASE {s['mase']:.3f} cov {s['coverage_80']:.2f}"
                for k, s in scores.items()
            )
            + (
                f"  [grukit {gmeta['cpu_s']:.0f} CPU s, val loss {gmeta['best_val_loss']:.5f}, "
                f"epochs {gmeta['epochs_run']} (best {gmeta['best_epoch']})]"
                if gmeta
                else ""
            ),
            flush=True,
        )
    overall = {}
    for k, rows in all_rows.items():
        if not rows:
            continue
        cat = {x: np.concatenate([r[f"_{x}"] for r in rows]) for x in ("smape", "mase", "cov")}
        overall[k] = {
            "smape": float(np.mean(cat["smape"])),
            "mase": float(np.nanmean(cat["mase"])),
            "coverage_80": float(np.mean(cat["cov"])),
            "n_series": len(cat["smape"]),
        }
    if len(args.sheets) > 1:
        print(
            "all: "
            + "  ".join(
                f"{k}: sMAPE {v['smape']:.2f} MASE {v['mase']:.3f}" for k, v in overall.items()
            ),
            flush=True,
        )
    if args.no_record or args.baselines_only:
        return
    import torch

    import grukit

    rec = {
        "task": "forecast",
        "benchmark": "M3 competition, competition protocol (fit on train, forecast the NF test values)",
        "command": " ".join(["python", *sys.argv]),
        "cli_equivalent": "grukit forecast --csv m3_<sheet>.csv --id-col series --time-col time "
        "--target value --horizon NF --backtest 1 --baselines none"
        + (
            f" --static-covariates {','.join(options['static_covariates'])}"
            if options.get("static_covariates")
            else ""
        ),
        "seed": args.seed,
        "subset": args.subset,
        "cpu": _cpu_model(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),
        "torch": torch.__version__,
        "torch_threads": 1,
        "grukit_version": grukit.__version__,
        "statsforecast_version": _sf_version(),
        "grukit_cpu_s_total": round(grukit_cpu, 1),
        "metric": "sMAPE = mean over the horizon of 200|y-f|/(|y|+|f|); MASE = MAE / in-sample MAE of the "
        "lag-m naive forecast on train (m: yearly 1, quarterly 4, monthly 12, other 1); coverage_80 = share "
        "of test values inside [q0.1, q0.9]; sheet and overall values are plain means over series",
        "sheets": rec_sheets,
        "overall": overall,
        "published": PUBLISHED,
    }
    if args.record_key:  # beside the other records of the file, which are left as they are
        out = Path(args.out)
        whole = json.loads(out.read_text()) if out.is_file() else {}
        whole[args.record_key] = rec
        rec = whole
    Path(args.out).write_text(json.dumps(rec, indent=2) + "\n")
    print(f"wrote {args.out}")


def main_variants(args) -> None:
    """``--variants``: one K-member run per sheet, every k-member variant scored (see the module doc)."""
    import torch

    from grukit.tasks.forecast import report

    torch.set_num_threads(1)
    options = json.loads(args.options)
    if args.static_covariates:
        options["static_covariates"] = [c for c in args.static_covariates.split(",") if c]
    K = args.ensemble
    ks = sorted({1, *range(2, K + 1)})
    variants: dict[str, dict] = {}
    per_sheet_rows: dict[str, list] = {}
    validation, runs = {}, {}
    cpu_total = 0.0
    for sheet in args.sheets:
        h, m = SHEETS[sheet]
        df = load_sheet(sheet, args.subset)
        ids, train, test = split(df)
        out_dir = (
            ROOT / "runs" / f"bench-m3-{sheet}-{args.subset or 'all'}-seed{args.seed}-ens{K}"
            f"{'-' + args.label if args.label else ''}"
        )
        shutil.rmtree(out_dir, ignore_errors=True)
        t0, w0 = time.process_time(), time.perf_counter()
        res = report.backtest_run(
            df,
            target="value",
            time_col="time",
            id_col="series",
            horizon=h,
            backtest=1,
            dataset=f"m3_{sheet}",
            output_dir=out_dir,
            seed=args.seed,
            baselines=[],
            ensemble=K,
            **options,
        )
        cpu = time.process_time() - t0
        cpu_total += cpu
        met = res.metrics
        runs[sheet] = {
            "cpu_s": round(cpu, 1),
            "wall_s": round(time.perf_counter() - w0, 1),
            "cpu_s_per_member": round(cpu / K, 1),
            "members_epochs_run": met.get("members_epochs_run"),
            "calibration_windows": met.get("calibration_windows"),
            "val_series": met.get("val_series"),
            "context": met.get("context"),
            "run_folder": str(res.run.path),
        }
        validation[sheet] = validation_report(res, ks)
        sel = {k: v for k, v in (met.get("selection") or {}).items() if k != "source"}
        validation[sheet]["selection"] = sel  # the blend weights and what they were chosen on
        order = {s: i for i, s in enumerate(ids)}
        # the default output: what GRUForecaster / grukit forecast return with --ensemble K (the
        # K-member median, calibrated as the run was, then the model selection: the blend)
        fc = np.full((len(ids), h, 3), np.nan)
        for sid, g in res.backtest.sort_values(["series", "step"]).groupby("series"):
            fc[order[str(sid)]] = g[["gru_q10", "gru_q50", "gru_q90"]].to_numpy()
        sc = score(train, test, fc, m)
        variants.setdefault(DEFAULT, {"sheets": {}})["sheets"][sheet] = {
            x: sc[x] for x in ("smape", "mase", "coverage_80")
        }
        per_sheet_rows.setdefault(DEFAULT, []).append(sc)
        bt_ids = pd.unique(res.backtest["series"].astype(str))
        for k in ks:
            for conf in (False, True):
                q = res.backtest_quantiles(k, conf)  # (scored series, h, Q), one origin each
                fc = np.full((len(ids), h, q.shape[-1]), np.nan)
                for j, sid in enumerate(bt_ids):
                    fc[order[sid]] = q[j]
                name = f"ensemble{k}" + ("+conformal" if conf else "")
                sc = score(train, test, fc, m)
                variants.setdefault(name, {"sheets": {}})["sheets"][sheet] = {
                    x: sc[x] for x in ("smape", "mase", "coverage_80")
                }
                per_sheet_rows.setdefault(name, []).append(sc)
        print(
            f"{sheet}: {len(ids)} series, {cpu:.0f} CPU s for {K} members; "
            + "  ".join(
                f"{n}: {v['sheets'][sheet]['smape']:.2f}/{v['sheets'][sheet]['mase']:.3f}/"
                f"{v['sheets'][sheet]['coverage_80']:.2f}"
                for n, v in variants.items()
            ),
            flush=True,
        )
        print(f"  validation: {json.dumps(validation[sheet])}", flush=True)
        if not args.no_record:  # each finished sheet is on disk (a run that dies later keeps it)
            _write_variants(args, K, options, cpu_total, runs, validation, variants, partial=True)
    for name, rows in per_sheet_rows.items():
        cat = {x: np.concatenate([r[f"_{x}"] for r in rows]) for x in ("smape", "mase", "cov")}
        variants[name]["overall"] = {
            "smape": float(np.mean(cat["smape"])),
            "mase": float(np.nanmean(cat["mase"])),
            "coverage_80": float(np.mean(cat["cov"])),
            "n_series": len(cat["smape"]),
        }
    if len(args.sheets) > 1:
        print(
            "all: "
            + "  ".join(
                f"{n}: {v['overall']['smape']:.2f}/{v['overall']['mase']:.3f}/"
                f"{v['overall']['coverage_80']:.2f}"
                for n, v in variants.items()
            ),
            flush=True,
        )
    if args.no_record:
        return
    _write_variants(args, K, options, cpu_total, runs, validation, variants, partial=False)


def _write_variants(args, K, options, cpu_total, runs, validation, variants, partial) -> None:
    """The ``--variants`` record under its key of ``--out`` (the file's other records kept)."""
    path = Path(args.out)
    rec = json.loads(path.read_text()) if path.is_file() else {}
    key = "variants" if not args.label else f"variants_{args.label}"
    rec[key] = {
        "command": " ".join(["python", *sys.argv]),
        "about": "one fit per sheet with ensemble K (members: seeds seed..seed+K-1, everything else the "
        "single model's options); ensemble<k> = the GRU alone: the median of the first k members' "
        "quantiles, +conformal = its intervals calibrated by split conformal on the run's validation "
        f"windows; ensemble1 is member 0 alone (the single model's recipe and seed); {DEFAULT} = the "
        "forecast the estimator returns with ensemble=K and default options (the K-member median, "
        "calibrated, then the model selection: a panel of more than 20 series gets the blend of the GRU, "
        "AutoETS and AutoTheta with weights chosen on held-out validation windows, "
        "validation.<sheet>.selection)",
        "ensemble": K,
        "seed": args.seed,
        "subset": args.subset,
        "options": options,
        "sheets_done": list(runs),
        "partial": partial,
        "cpu": _cpu_model(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),
        "torch_threads": 1,
        "grukit_cpu_s_total": round(cpu_total, 1),
        "runs": runs,
        "validation": validation,
        "scores": variants,
    }
    path.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"wrote {path} ({key}{', partial' if partial else ''})", flush=True)


if __name__ == "__main__":
    main()
