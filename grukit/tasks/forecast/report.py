"""The run of ``grukit forecast``: the estimator's backtest and forecast, the statsforecast baselines on the
same histories, the metrics, the run folder and its plot — built from :class:`~.estimator.GRUForecaster`'s
output and the data.

:func:`run_forecast` is what the CLI (and the benchmarks, which run what the CLI runs) call. The run folder
holds model.safetensors (+ ``member-<k>/``), ensemble.json, config.json, metrics.json, log.csv,
backtest.csv (``series, origin, time, step, actual, gru_q10, gru_q50, gru_q90, <baseline>...``),
forecast.csv (``series, time, step, q10, q50, q90``) and forecast.png. The deprecated
``grukit.tasks.forecast.fit``/``predict`` live here too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import calibrate as Q
from . import data as D
from . import evaluate as E
from .config import RESUME_KEEP, ForecastOptions, build_options
from .ensemble import Ensemble
from .estimator import SELECTION_FILE, SELECTION_WEIGHTS_FILE, GRUForecaster, output_columns
from .spec import paused_gc

TASK = "forecast"


@dataclasses.dataclass
class ForecastResult:
    """What :func:`run_forecast` returns: the run folder, metrics, per-origin backtest and the future
    forecast (the run folder's CSV columns), the fitted estimator."""

    run: Any
    metrics: dict[str, Any]
    backtest: pd.DataFrame
    forecast: pd.DataFrame
    model: Ensemble
    spec: D.DataSpec
    history: list[dict]
    #: the validation windows the calibration used (past, future, target, tmask on the z scale)
    calibration_windows: dict[str, np.ndarray] | None = None
    #: (panel, series index, origins) of the backtest rows
    backtest_windows: tuple[D.Panel, np.ndarray, np.ndarray] | None = None
    estimator: GRUForecaster | None = None

    def backtest_quantiles(self, n_members: int | None = None, conformal: bool | None = None):
        """Backtest quantiles (N origins, H, Q) on the data scale of a variant of this run's model: its
        first ``n_members`` members (default all), calibrated on the run's validation windows or not
        (default: as the run was). Rows follow ``backtest`` (series, then origin)."""
        from .train import conformal_offsets, predict_quantiles

        members = self.model.member_list[: n_members or len(self.model.members)]
        ens = Ensemble(members)
        use = (self.model.offsets is not None) if conformal is None else conformal
        if use:
            if self.calibration_windows is None:
                raise ValueError("this result holds no calibration windows")
            ens = ens.with_offsets(conformal_offsets(ens, self.calibration_windows))
        panel, sidx, origins = self.backtest_windows  # type: ignore[misc]
        return predict_quantiles(ens, panel, sidx, origins)

    def table(self):
        """The rich metrics table (model and baselines, best per metric marked)."""
        rows = {"gru": self.metrics["model"], **self.metrics.get("baselines", {})}
        m = self.metrics
        return E.render_table(
            rows,
            title=f"{m['dataset']}: backtest over {m['backtest_origins']} origin(s) × horizon "
            f"{m['horizon']}, {m['n_series_scored']} series"
            + (f" ({m['n_series_skipped']} skipped)" if m["n_series_skipped"] else ""),
            notes=m.get("table_notes"),
            partial=set(m.get("partial_forecasters") or {}),
        )


def run_forecast(
    df: pd.DataFrame | None,
    opts: ForecastOptions,
    *,
    prepared: Any = None,
    output_dir: str | Path | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    trainer_kwargs: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
) -> ForecastResult:
    """Backtest the estimator of ``opts`` (``cross_validation`` with ``opts.backtest`` windows
    ``opts.stride`` apart) against the baselines, forecast after the data, write the run folder.

    ``prepared`` (from :meth:`GRUForecaster.prepared`) is the checked table; without it ``df`` is checked
    here. The run folder is made only once every check passed (a bad table leaves no files). ``inputs``
    (``{"--csv": path}``) are fingerprinted in config.json (a resumed run refuses changed data). The run
    is marked complete last, after every file; non-finite forecasts are refused, never written."""
    from ...train.run import RunInterrupted, open_run

    t_start = time.perf_counter()
    est = GRUForecaster.from_options(opts, trainer_kwargs)
    if prepared is None:
        if df is None:
            raise ValueError("run_forecast needs df or prepared")
        prepared = GRUForecaster.prepared(df, D.spec_from_options(df, opts))
    spec = prepared.spec
    # the run forecasts after the data: its future covariates are checked before any file is made
    est.check(prepared, est._resolved(opts, spec), future=True)
    with contextlib.ExitStack() as stack:
        runs: list[Any] = []

        def make_run():
            run, _ = open_run(TASK, output_dir=output_dir, resume=resume, overwrite=overwrite)
            stack.enter_context(run.guard())
            runs.append(run)
            return run

        fit_options = dict(inputs=inputs or {}, finish=False, resume_command="grukit forecast")
        try:
            cv = est.cross_validation_prepared(
                prepared,
                opts,
                run=make_run,
                resume=resume,
                progress=progress,
                fit_options=fit_options,
            )
        except RunInterrupted:
            if not runs:
                raise
            # also when an ensemble member (in member-<k>/) was stopped: --resume continues the run
            raise RunInterrupted(
                f"interrupted; continue with `grukit forecast --resume {runs[0].path}`"
            ) from None
        if cv is None:  # a DDP rank other than 0
            return None  # type: ignore[return-value]
        run = runs[0]
        opts = est.options_  # type: ignore[assignment]
        assert opts is not None
        tr = est.training_
        gc_pause = stack.enter_context(contextlib.ExitStack())  # until metrics.json is written
        gc_pause.enter_context(paused_gc())  # per-series rows: no full collections while they grow
        bt, per_series, notes = _backtest(est, cv, prepared.series, opts)
        fc = forecast_table(est.predict(), spec, est.alias, est.model_.quantiles)
        check_finite(est.cv_quantiles_, "backtest")
        check_finite(fc.drop(columns=["series", "time", "step"]).to_numpy(), "forecast")
        model_m = E.average([p["model"] for p in per_series.values()])
        base_m = {
            b: E.average([p["baselines"][b] for p in per_series.values()]) for b in opts.baselines
        }
        fits = tr.fits
        res0 = fits[0]
        best_val = [r.get("val_loss") for r in res0.history if r.get("val_loss") is not None]
        offsets = est.model_.offsets
        scored = prepared.series
        if est.skipped_:
            gone = set(est.skipped_)
            keep = [k for k, i in enumerate(D.ids_of(scored)) if i not in gone]
            scored = D.subset(scored, keep)
        extra: dict[str, Any] = dict(
            horizon=opts.horizon,
            context=opts.context,
            season_length=spec.season_length,
            freq=spec.freq,
            backtest_origins=opts.backtest,
            stride=opts.stride,
            target=opts.target,
            log_scale=spec.log,
            scaling=spec.scaling,
            seasonal=spec.seasonal,
            series=len(prepared.series),
            n_series_scored=len(scored),
            n_series_skipped=len(est.skipped_),
            skipped_series=est.skipped_,
            epochs_run=res0.epochs_run,
            best_epoch=res0.best_epoch,
            best_val_loss=min(best_val) if best_val else None,
            train_time_s=round(sum(f.wall_time_s for f in fits), 3),
            quantiles=list(est.model_.quantiles),
            ensemble=len(est.model_.members),
            ensemble_seeds=[opts.seed + k for k in range(len(est.model_.members))],
            members_epochs_run=[f.epochs_run for f in fits],
            conformal=offsets is not None,
            conformal_offsets=None if offsets is None else offsets.round(6).tolist(),
            calibration_windows=int(len(tr.calibration["target"])),
            batch_size=tr.batch_size,
            epoch_windows=tr.epoch_windows,
            **tr.split_info,
            **notes,
        )
        if len(scored) > 1:
            extra["per_series"] = per_series
        extra["selection"] = _selection_report(est)
        from ...train.run import metrics_record

        record = metrics_record(
            task=TASK,
            dataset=opts.dataset,
            split="backtest",
            model=model_m,
            baselines=base_m,
            seed=opts.seed,
            wall_time_s=time.perf_counter() - t_start,
            **extra,
        )
        run.write_json("metrics.json", record)  # what run.write_metrics(**same) writes
        metrics = _as_read(record)
        gc_pause.close()
        _write_csv(bt, run.file("backtest.csv"))
        _write_csv(fc, run.file("forecast.csv"))
        if est.selection_:  # predict from the run folder forecasts with the same sources
            run.file(SELECTION_FILE).write_text(json.dumps(est.selection_, indent=2) + "\n")
        if est.selection_weights_:
            text = json.dumps(est.selection_weights_, indent=2) + "\n"
            run.file(SELECTION_WEIGHTS_FILE).write_text(text)
        first = est.cv_windows_[3]
        plot_forecast(scored, bt, fc, spec, run.file("forecast.png"), first_origins=first)
        run.complete()  # last: the run folder is whole
    panel, sidx, origins, _ = est.cv_windows_
    return ForecastResult(
        run=run,
        metrics=metrics,
        backtest=bt,
        forecast=fc,
        model=est.model_,
        spec=spec,
        history=res0.history,
        calibration_windows=tr.calibration,
        backtest_windows=(panel, sidx, origins),
        estimator=est,
    )


def _selection_report(est: GRUForecaster) -> dict[str, Any]:
    """metrics.json's ``selection``: on or off, how many series each source serves, each series' source
    and the validation MASE of every candidate (mean over the series selected on), and how many
    validation windows (series × window) the choice was made on."""
    from .selection import BLEND, CANDIDATES

    sel = est.selection_
    counts = {c: sum(1 for v in sel.values() if v == c) for c in (*CANDIDATES, BLEND)}
    vals = list(est.selection_scores_.values())
    names = [c for c in (*CANDIDATES, BLEND) if vals and all(c in v for v in vals)]
    mean_val = {c: float(np.nanmean([v[c] for v in vals])) for c in names}
    from ...train.run import PlainJSON

    return {
        "on": bool(est.select),
        "counts": {k: v for k, v in counts.items() if v},
        # id → source name (texts): JSON as it is, written without conversion
        "source": PlainJSON(sel),
        "validation_mase": mean_val,
        "series_selected_on_validation": len(vals),
        "validation_windows": int(sum(getattr(est, "selection_windows_", {}).values())),
        "weights": dict(est.selection_weights_),
    }


def _as_read(record: dict[str, Any]) -> dict[str, Any]:
    """What ``json.loads`` of the ``metrics.json`` written from ``record`` gives, without reading the file
    back (at 100k series an 18 MB decode): each value through :func:`~grukit.train.run.write_json`'s
    conversion and one JSON round trip, except the per-series table, a
    :class:`~grukit.train.run.PlainJSON` that already holds JSON as it is (``None`` for a non-finite
    metric, text keys), which is copied as a plain dict."""
    from ...train.run import PlainJSON, _jsonable

    def read(v: Any) -> Any:
        if type(v) is PlainJSON:
            return dict(v)
        if type(v) is dict:  # a PlainJSON inside (the selection's sources) stays as it is
            return {str(k): read(x) for k, x in v.items()}
        return json.loads(json.dumps(_jsonable(v)))

    return {k: read(v) for k, v in record.items()}


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    from ..._io import atomic_path
    from .writing import write_csv

    with atomic_path(path) as tmp:
        write_csv(df, tmp)  # what df.to_csv(tmp, index=False, float_format="%.6g") writes


def check_finite(values: Any, what: str) -> None:
    """Refuse (one line, exit 2) to write non-finite model outputs as results: a NaN or an infinity in a
    forecast means the model diverged (too large a --lr) or its weights are damaged."""
    arr = np.asarray(values, dtype=np.float64)
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        from ...errors import UserInputError

        raise UserInputError(
            f"the model's {what} holds {bad} non-finite value(s) (NaN or inf); nothing written as a "
            f"result (the training diverged or the model is damaged: lower --lr or retrain)"
        )


def _quantile_array(frame: pd.DataFrame, alias: str, quantiles, n: int, H: int) -> np.ndarray:
    """The (n, H, Q) quantiles of an estimator output frame (rows: series/window, then step)."""
    cols = output_columns(alias, quantiles)
    return frame[cols].to_numpy(np.float64).reshape(n, H, len(quantiles))


def _backtest(
    est: GRUForecaster, cv: pd.DataFrame, series: Sequence[D.Series], opts: ForecastOptions
) -> tuple[pd.DataFrame, dict, dict]:
    """The backtest table (run folder columns), per-series metrics of the model and the baselines (fed the
    same histories, gaps interpolated), and notes for metrics.json.

    Every metric is computed over the steps whose actual was observed and that every compared forecaster
    covered (a finite forecast). A baseline that covered fewer of them is scored over its own steps and
    reported as partial (``partial_forecasters``: name → steps covered of the scored steps); the table
    never stars it."""
    panel, sidx, origins, first = est.cv_windows_
    scored = panel.series
    H, m = opts.horizon, panel.spec.season_length
    levels = tuple(est.model_.quantiles)
    mid = Q.median_index(levels)
    q = _quantile_array(cv, est.alias, levels, len(sidx), H)  # (N, H, Q)
    hists = (
        [scored[i].y[:o][-opts.baseline_history :] for i, o in zip(sidx, origins)]
        if opts.baselines
        else []
    )
    bases = E.statsforecast_baselines(hists, H, m, opts.baselines, quantiles=levels)
    actual = D.window_values(scored, sidx, origins, H)
    seen = D.observed_windows(scored, sidx, origins, H)
    covered = {
        "gru": np.isfinite(q[..., mid]),
        **{b: np.isfinite(a[..., mid]) for b, a in bases.items()},
    }
    base_mask = seen & covered["gru"]  # the steps to score
    n_scored = int(base_mask.sum())
    partial = {
        b: int((c & base_mask).sum())
        for b, c in covered.items()
        if (c & base_mask).sum() < n_scored
    }
    common = base_mask.copy()
    for b, c in covered.items():
        if b not in partial:
            common &= c
    # the rows of each series (ascending), from one sort rather than a scan of every row per series
    by_series = np.argsort(sidx, kind="stable")
    seg = sidx[by_series]
    n_s = len(scored)
    scales = _mase_scales(scored, first, m)
    metrics = {
        "model": _segment_metrics(actual, q, common, sidx, n_s, scales, levels),
        **{
            b: _segment_metrics(
                actual,
                arr,
                (base_mask & covered[b]) if b in partial else common,
                sidx,
                n_s,
                scales,
                levels,
            )
            for b, arr in bases.items()
        },
    }
    from ...train.run import PlainJSON

    per_series: dict[str, Any] = PlainJSON()  # JSON as it is (NaN → None here): written as it is
    rows_of = {k: [dict(zip(v, t)) for t in zip(*v.values())] for k, v in _listed(metrics).items()}
    for i, sid in enumerate(D.ids_of(scored)):
        per_series[sid] = {
            "model": rows_of["model"][i],
            "baselines": {b: rows_of[b][i] for b in bases},
        }
    o_sorted = origins[by_series]
    stamps_a = D.window_times(scored, seg, o_sorted - 1, H + 1)
    ids = np.array(D.ids_of(scored), dtype=object)
    cols: dict[str, np.ndarray] = {
        "series": np.repeat(ids[seg], H),
        "origin": np.repeat(stamps_a[:, 0], H),
        "time": stamps_a[:, 1:].ravel(),
        "step": np.tile(np.arange(1, H + 1), len(seg)),
        "actual": np.where(seen, actual, np.nan)[by_series].ravel(),
        **{f"gru_{Q.column_name(lv)}": q[by_series, :, j].ravel() for j, lv in enumerate(levels)},
        **{b: arr[by_series, :, mid].ravel() for b, arr in bases.items()},
    }
    missing = int((~seen).sum())
    notes: dict[str, Any] = {
        "steps_scored": int(common.sum()),
        "actuals_missing": missing,
        "partial_forecasters": {b: {"steps": k, "of": n_scored} for b, k in partial.items()},
    }
    lines = []
    if missing:
        lines.append(
            f"{missing} of {actual.size} backtest actuals are missing; every metric skips them"
        )
    for b, k in partial.items():
        lines.append(
            f"{b} forecast only {k} of the {n_scored} scored steps: scored on those, not ranked"
        )
    notes["table_notes"] = lines
    return pd.DataFrame(cols), per_series, notes


def _mase_scales(series: Sequence[D.Series], first: dict[str, int], m: int) -> np.ndarray:
    """:func:`~.evaluate.mase_scale` of every series' history before its first origin, (n,): segment sums
    over the flat histories, a few thousand series at a time."""
    out = np.full(len(series), np.nan)
    step = 8192
    ids = D.ids_of(series)
    for a in range(0, len(series), step):
        part = series[a : a + step]
        n = np.array([first[i] for i in ids[a : a + step]], dtype=np.int64)
        lag = np.where(n > m, m, 1)
        flat = np.asarray(D.flat_heads(part, n), dtype=np.float64)
        start = np.cumsum(n) - n
        pos = np.arange(len(flat)) - np.repeat(start, n)
        seg = np.repeat(np.arange(len(part)), n)
        lag_r = np.repeat(lag, n)
        ok = pos >= lag_r
        d = np.abs(flat[ok] - flat[np.nonzero(ok)[0] - lag_r[ok]])
        cnt = np.bincount(seg[ok], minlength=len(part))
        tot = np.bincount(seg[ok], weights=d, minlength=len(part))
        with np.errstate(invalid="ignore", divide="ignore"):
            sc = tot / cnt
        out[a : a + step] = np.where((cnt > 0) & (sc > 0), sc, np.nan)
    return out


def _segment_metrics(actual, quantiles, mask, seg, n_seg, scale, levels) -> dict[str, np.ndarray]:
    """:func:`~.evaluate.point_metrics` of every series at once: actual (N, H), quantiles (N, H, Q), mask
    (N, H; the steps to score), seg (N,; each row's series), scale (n_seg,) → each metric (n_seg,) (NaN
    where a series has no step to score). Segment sums: equal to the per-series means up to the order of
    summation."""
    mid = Q.median_index(levels)
    w = mask.astype(np.float64)
    a = np.where(mask, actual, 0.0)
    qq = np.where(mask[..., None], quantiles, 0.0)
    point = qq[..., mid]
    err = a - point
    den = np.abs(a) + np.abs(point)
    sm = np.where(den > 0, 200.0 * np.abs(err) / np.where(den > 0, den, 1.0), 0.0)
    key = np.repeat(np.asarray(seg, dtype=np.int64), actual.shape[1])

    def total(v):
        return np.bincount(key, weights=(v * w).ravel(), minlength=n_seg)

    n = total(np.ones_like(a))
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = total(np.abs(err)) / n
        out = {
            "mae": mae,
            "rmse": np.sqrt(total(err**2) / n),
            "mase": np.where(np.isfinite(scale) & (scale != 0), mae / scale, np.nan),
            "smape": total(sm) / n,
        }
        for lo, hi, cov in sorted(Q.intervals(levels), key=lambda t: t[2]):
            inside = (a >= qq[..., lo]) & (a <= qq[..., hi])
            out[Q.coverage_key(cov)] = total(inside.astype(np.float64)) / n
    return {k: np.where(n > 0, v, np.nan) for k, v in out.items()}


def _listed(
    metrics: dict[str, dict[str, np.ndarray]],
) -> dict[str, dict[str, list[float | None]]]:
    """The metric arrays as lists, a non-finite value as None (as metrics.json holds it)."""
    out: dict[str, dict[str, list[float | None]]] = {}
    for k, d in metrics.items():
        out[k] = {}
        for name, v in d.items():
            v = np.asarray(v, dtype=np.float64)
            ok = np.isfinite(v)
            if ok.all():
                out[k][name] = v.tolist()
            else:
                obj = v.astype(object)
                obj[~ok] = None
                out[k][name] = obj.tolist()
    return out


def forecast_table(fc: pd.DataFrame, spec: D.DataSpec, alias: str, quantiles) -> pd.DataFrame:
    """The estimator's forecast (``unique_id, ds, GRU, GRU-lo-80, GRU-hi-80``) in the run folder's
    forecast.csv columns: ``series, time, step, q10, q50, q90`` (one per quantile level)."""
    idc = spec.id_col or "unique_id"
    ids = fc[idc].astype(str).to_numpy()
    step = fc.groupby(ids, sort=False).cumcount().to_numpy() + 1
    out = pd.DataFrame({"series": ids, "time": fc[spec.time_col].to_numpy(), "step": step})
    for col, q in zip(output_columns(alias, quantiles), quantiles):
        out[Q.column_name(q)] = fc[col].to_numpy()
    return out


# --------------------------------------------------------------------------------------- plot
def plot_forecast(
    series,
    bt: pd.DataFrame,
    fc: pd.DataFrame,
    spec: D.DataSpec,
    path: Path,
    first_origins: dict[str, int] | None = None,
    max_series: int = 6,
) -> Path:
    """History, backtest medians, future median and its widest band, one panel per series (at most ``max_series``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ...train import save_figure

    shown = series[:max_series]
    keep = [s.id for s in shown]  # one pass over the big tables, not one per panel
    bt = bt[bt["series"].isin(keep)] if len(bt) else bt
    fc = fc[fc["series"].isin(keep)]
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 2.8 * len(shown)), squeeze=False)
    for ax, s in zip(axes[:, 0], shown):
        o0 = (first_origins or {}).get(s.id, len(s))
        start = max(0, o0 - 3 * max(spec.season_length, 30))
        ax.plot(s.times[start:], s.y[start:], color="0.3", lw=1, label="history")
        if len(bt):
            b = bt[bt["series"] == s.id]
            for j, (_, g) in enumerate(b.groupby("origin")):
                ax.plot(
                    g["time"],
                    g["gru_q50"],
                    color="tab:orange",
                    lw=1.2,
                    label="backtest (GRU)" if j == 0 else None,
                )
        f = fc[fc["series"] == s.id]
        qcols = [c for c in fc.columns if c.startswith("q") and c != "q50"]
        if qcols:  # the widest interval
            width = float(qcols[-1][1:]) - float(qcols[0][1:])
            ax.fill_between(
                f["time"],
                f[qcols[0]],
                f[qcols[-1]],
                color="tab:blue",
                alpha=0.25,
                label=f"{width:g}% band",
            )
        ax.plot(f["time"], f["q50"], color="tab:blue", lw=1.5, label="forecast")
        if o0 < len(s):
            ax.axvline(s.times[o0], color="0.6", ls=":", lw=1)
        ax.set_title(f"{s.id}: {spec.target}" if s.id != "series" else spec.target, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------- deprecated
def builtin_options(name: str, **overrides: Any) -> dict[str, Any]:
    """The options of a built-in dataset's preset (``D.BUILTIN``), ``overrides`` replacing any."""
    b = D.BUILTIN[name]
    args: dict[str, Any] = dict(
        target=b["target"],
        time_col=b["time_col"],
        covariates=list(b["covariates"]),
        id_col=b["id_col"],
        horizon=b["horizon"],
        context=b["context"],
        backtest=b["backtest"],
        stride=b.get("stride"),
        log=b["log"],
        dataset=name,
        calendar=b.get("calendar", True),
        scaling=b.get("scaling", "window"),
        seasonal=b.get("seasonal", "snaive"),
    )
    args.update(overrides)
    return args


def backtest_run(
    df: pd.DataFrame,
    target: str,
    time_col: str,
    *,
    output_dir: str | Path | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    given: set[str] | None = None,
    **options: Any,
) -> ForecastResult:
    """:func:`run_forecast` from keyword options (:class:`~.config.ForecastOptions` fields: covariates,
    id_col, horizon, context, backtest, scaling, seasonal, hidden, epochs, baselines, seed, ...).

    ``resume`` continues the run in that folder with its own options (``config.json``); an option given
    now (``given``: the names, default those that differ from the defaults) that conflicts is refused."""
    opts = build_options(target, time_col, **options)
    if resume is not None:
        from ...train import resumed_config

        opts = resumed_config(resume, opts, keep=RESUME_KEEP, given=given)
    return run_forecast(
        df, opts, output_dir=output_dir, resume=resume, overwrite=overwrite, progress=progress
    )


def predict_table(checkpoint: str | Path, df: pd.DataFrame) -> pd.DataFrame:
    """The forecast of a run folder's model after ``df``, in forecast.csv's columns (series, time,
    step, q10, q50, q90)."""
    est = GRUForecaster.load(checkpoint)
    assert est.spec_ is not None
    prep = est.prepared(df, est.spec_)
    return forecast_table(est.predict_prepared(prep), est.spec_, est.alias, est.model_.quantiles)


def fit(df: pd.DataFrame, target: str, time_col: str, **kwargs: Any) -> ForecastResult:
    """Deprecated: use :class:`grukit.forecast.GRUForecaster` (``cross_validation`` + ``predict``), or
    ``grukit forecast`` for a run folder with baselines. Trains, backtests and writes a run folder as
    before (:func:`backtest_run`)."""
    warnings.warn(
        "grukit.tasks.forecast.fit is deprecated and will be removed in the next release: use "
        "grukit.forecast.GRUForecaster(h=...).cross_validation(df, ...) / .predict(), or the "
        "`grukit forecast` command for a run folder with baselines",
        DeprecationWarning,
        stacklevel=2,
    )
    return backtest_run(df, target, time_col, **kwargs)


def predict(checkpoint: str | Path, df: pd.DataFrame) -> pd.DataFrame:
    """Deprecated: use ``grukit.forecast.GRUForecaster.load(checkpoint).predict(df=df)``. Returns the old
    columns: series, time, step and one column per quantile level (q10, q50, q90 by default)."""
    warnings.warn(
        "grukit.tasks.forecast.predict is deprecated and will be removed in the next release: use "
        "grukit.forecast.GRUForecaster.load(checkpoint).predict(df=df)",
        DeprecationWarning,
        stacklevel=2,
    )
    return predict_table(checkpoint, df)


def run_builtin(name: str = "weather", **overrides: Any) -> ForecastResult:
    """``grukit forecast --dataset NAME`` from Python: the built-in dataset ("weather": Seattle temp_max 7
    days ahead; "stocks": monthly prices 6 months ahead on a log scale) with its preset; ``overrides``
    replace any option (:class:`~.config.ForecastOptions` fields, plus ``output_dir``/``overwrite``)."""
    df = D.load_builtin(name)
    args = builtin_options(name, **overrides)
    run_args = {k: args.pop(k) for k in ("output_dir", "overwrite", "progress") if k in args}
    opts = build_options(args.pop("target"), args.pop("time_col"), **args)
    return run_forecast(df, opts, **run_args)
