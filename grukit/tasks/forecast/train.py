"""The main job: fit a GRU forecaster, backtest it against baselines, forecast the future, write the run.

fit(df, target=..., time_col=...)  →  ForecastResult   (the CLI's ``grukit forecast`` calls this)
predict(checkpoint, df)            →  DataFrame of future quantiles
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from ... import serialization
from ...errors import UserInputError
from ...train import RunDir, resolve_checkpoint, seed_everything
from ...train import fit as fit_run
from . import data as D
from . import evaluate as E
from .model import ForecastModule, GRUForecaster

TASK = "forecast"


@dataclasses.dataclass
class ForecastOptions:
    """Every option of a forecasting run (written to config.json)."""

    dataset: str = "csv"
    time_col: str = "date"
    target: str = "value"
    covariates: list[str] = dataclasses.field(default_factory=list)
    id_col: str | None = None
    freq: str | None = None
    season_length: int | None = None
    horizon: int = 7
    context: int | None = None
    backtest: int = 5
    stride: int | None = None
    log: bool = False
    calendar: bool = True
    relative: bool = False
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.1
    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int | None = 8
    seed: int = 0
    baselines: list[str] = dataclasses.field(default_factory=lambda: list(E.BASELINES))
    baseline_history: int = 500
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    accelerator: str = "cpu"
    limit_train_batches: int | float | None = None


@dataclasses.dataclass
class ForecastResult:
    """What :func:`fit` returns: the run folder, metrics, per-origin backtest and the future forecast."""

    run: RunDir
    metrics: dict[str, Any]
    backtest: pd.DataFrame
    forecast: pd.DataFrame
    model: GRUForecaster
    spec: D.DataSpec
    history: list[dict]

    def table(self):
        """The rich metrics table (model and baselines, best per metric marked)."""
        rows = {"gru": self.metrics["model"], **self.metrics.get("baselines", {})}
        return E.render_table(
            rows,
            title=f"{self.metrics['dataset']}: backtest over "
            f"{self.metrics['backtest_origins']} origins × horizon "
            f"{self.metrics['horizon']}",
        )


# --------------------------------------------------------------------------------------- layout
@dataclasses.dataclass
class _Layout:
    origins: list[int]  # backtest origins (index of the first forecast step)
    val: list[int]
    train: list[int]


def _layout(T: int, sid: str, C: int, H: int, n: int, S: int) -> _Layout:
    o_min = T - H - (n - 1) * S
    avail = o_min - H - C + 1
    n_val = max(H, avail // 10)
    val_first = o_min - H - n_val + 1
    n_train = val_first - H - C + 1
    if n_train < 1:
        need = C + 4 * H + (n - 1) * S - 1
        raise UserInputError(
            f"series {sid!r} has {T} points, too short for context {C} + horizon {H} + validation + {n} backtest "
            f"origins {S} apart: at least {need} needed (lower --context, --horizon or --backtest)"
        )
    return _Layout(
        origins=[o_min + i * S for i in range(n)],
        val=list(range(val_first, o_min - H + 1)),
        train=list(range(C, val_first - H + 1)),
    )


def _stack(series, spec, layouts, which: str, C: int, H: int) -> TensorDataset:
    parts = [D.windows(s, spec, getattr(layouts[s.id], which), C, H) for s in series]
    return TensorDataset(
        *(
            torch.from_numpy(np.concatenate([p[k] for p in parts]))
            for k in ("past", "future", "target")
        )
    )


def _default_context(spec: D.DataSpec, H: int) -> int:
    m = spec.season_length
    return int(min(max(4 * H, 2 * m, 24), 96))


@torch.no_grad()
def _predict_z(model: GRUForecaster, w: dict[str, np.ndarray]) -> np.ndarray:
    model.eval()
    return (
        model(torch.from_numpy(w["past"]), torch.from_numpy(w["future"])).double().numpy()
    )  # (N, H, 3)


def _to_raw(zq: np.ndarray, sc: dict, spec: D.DataSpec) -> np.ndarray:
    return D.inverse(zq * sc["y_std"] + sc["y_mean"], spec)


# --------------------------------------------------------------------------------------- fit
def fit(
    df: pd.DataFrame,
    target: str,
    time_col: str,
    *,
    covariates: list[str] | None = None,
    id_col: str | None = None,
    freq: str | None = None,
    season_length: int | None = None,
    horizon: int = 7,
    context: int | None = None,
    backtest: int = 5,
    stride: int | None = None,
    log: bool = False,
    dataset: str = "csv",
    output_dir: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = False,
    **options: Any,
) -> ForecastResult:
    """Train a GRU forecaster on ``df`` and backtest it against naive, seasonal-naive, ETS and ARIMA.

    ``df`` has a time column, a numeric target and optionally an id column (several series) and past-only
    covariates (numeric or categorical). The last ``backtest`` origins (``stride`` apart, default ``horizon``)
    of each series are held out; the model trains on what comes before (its last part for validation and
    early stopping). Writes the run folder (model.safetensors, config.json, metrics.json, log.csv,
    backtest.csv, forecast.csv, forecast.png) and returns a :class:`ForecastResult`. Other keyword
    ``options`` are :class:`ForecastOptions` fields (hidden, layers, epochs, lr, seed, devices, ...).
    """
    t_start = time.perf_counter()
    known = {f.name for f in dataclasses.fields(ForecastOptions)}
    bad = sorted(set(options) - known)
    if bad:
        raise TypeError(f"unknown forecast options {bad}; expected some of {sorted(known)}")
    for name, v in (("--horizon", horizon), ("--backtest", backtest)):
        if not isinstance(v, int) or v < 1:
            raise UserInputError(f"{name} must be a positive integer, got {v!r}")
    spec = D.make_spec(
        df,
        time_col,
        target,
        covariates,
        id_col,
        freq,
        season_length,
        log,
        calendar=options.get("calendar", True),
    )
    C = _default_context(spec, horizon) if context is None else int(context)
    if C < 2:
        raise UserInputError(f"--context must be at least 2, got {C}")
    S = horizon if stride is None else int(stride)
    if S < 1:
        raise UserInputError(f"stride must be at least 1, got {S}")
    opts = ForecastOptions(
        dataset=dataset,
        time_col=time_col,
        target=target,
        covariates=list(covariates or []),
        id_col=id_col,
        freq=spec.freq,
        season_length=spec.season_length,
        horizon=horizon,
        context=C,
        backtest=backtest,
        stride=S,
        log=log,
        **options,
    )
    series = D.to_series(df, spec)
    layouts = {s.id: _layout(len(s), s.id, C, horizon, backtest, S) for s in series}
    D.fit_scalers(series, spec, {s.id: layouts[s.id].origins[0] for s in series})
    train_ds = _stack(series, spec, layouts, "train", C, horizon)
    val_ds = _stack(series, spec, layouts, "val", C, horizon)

    if resume is None:
        run = RunDir.create(TASK, output_dir=output_dir, mkdir=False)
        run.mkdir()
    else:
        from ...train import resolve_resume

        run = (
            RunDir(resolve_resume(resume)[0], task=TASK)
            if output_dir is None
            else RunDir.create(TASK, output_dir)
        )
    with run.guard():
        seed_everything(opts.seed)
        model = GRUForecaster(
            train_ds.tensors[0].shape[-1],
            train_ds.tensors[1].shape[-1],
            C,
            horizon,
            hidden_size=opts.hidden,
            num_layers=opts.layers,
            dropout=opts.dropout,
            relative=opts.relative,
        )
        module = ForecastModule(model, lr=opts.lr, weight_decay=opts.weight_decay)
        train_dl = DataLoader(train_ds, batch_size=opts.batch_size, shuffle=True)
        val_dl = DataLoader(val_ds, batch_size=512)
        res = fit_run(
            module,
            train_dl,
            val_dl,
            task=TASK,
            run=run,
            epochs=opts.epochs,
            seed=opts.seed,
            devices=opts.devices,
            num_nodes=opts.num_nodes,
            strategy=opts.strategy,
            accelerator=opts.accelerator,
            resume=resume,
            patience=opts.patience,
            gradient_clip=1.0,
            limit_train_batches=opts.limit_train_batches,
            progress=progress,
            save_extra={"spec": dataclasses.asdict(spec)},
            config=dataclasses.asdict(opts),
        )
        if not res.trainer.is_global_zero:
            return None  # type: ignore[return-value]  # other DDP ranks only train
        best = res.best_model()
        bt, per_series = _backtest(best, series, spec, layouts, C, horizon, opts)
        fc = _future(best, series, spec, C, horizon)
        model_m = E.average([p["model"] for p in per_series.values()])
        base_m = {
            b: E.average([p["baselines"][b] for p in per_series.values()])
            if all(p["baselines"].get(b) for p in per_series.values())
            else None
            for b in opts.baselines
        }
        extra: dict[str, Any] = dict(
            horizon=horizon,
            context=C,
            season_length=spec.season_length,
            freq=spec.freq,
            backtest_origins=backtest,
            stride=S,
            target=target,
            log_scale=log,
            series=len(series),
            epochs_run=res.epochs_run,
            best_epoch=res.best_epoch,
            train_time_s=round(res.wall_time_s, 3),
        )
        if len(series) > 1:
            extra["per_series"] = per_series
        run.write_metrics(
            task=TASK,
            dataset=dataset,
            split="backtest",
            model=model_m,
            baselines={k: v for k, v in base_m.items() if v is not None}
            | {k: {m: None for m in E.METRICS} for k, v in base_m.items() if v is None},
            seed=opts.seed,
            wall_time_s=time.perf_counter() - t_start,
            **extra,
        )
        import json

        metrics = json.loads(run.file("metrics.json").read_text())
        _write_csv(bt, run.file("backtest.csv"))
        _write_csv(fc, run.file("forecast.csv"))
        plot_forecast(
            series,
            bt,
            fc,
            spec,
            run.file("forecast.png"),
            first_origins={s.id: layouts[s.id].origins[0] for s in series},
        )
    return ForecastResult(
        run=run,
        metrics=metrics,
        backtest=bt,
        forecast=fc,
        model=best,
        spec=spec,
        history=res.history,
    )


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    df.to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(path)


def _backtest(model, series, spec, layouts, C, H, opts) -> tuple[pd.DataFrame, dict]:
    rows, per_series = [], {}
    m = spec.season_length
    for s in series:
        lay = layouts[s.id]
        sc = D.scaler_for(spec, s)
        w = D.windows(s, spec, lay.origins, C, H)
        q = _to_raw(_predict_z(model, w), sc, spec)  # (n, H, 3)
        fy = D.transform(s.y, spec)
        hists = [fy[:o][-opts.baseline_history :] for o in lay.origins]
        bases = E.run_baselines(hists, H, m, names=opts.baselines)
        actual = np.stack([s.y[o : o + H] for o in lay.origins])  # (n, H)
        scale = E.mase_scale(s.y[: lay.origins[0]], m)
        ps: dict[str, Any] = {
            "model": E.point_metrics(actual.ravel(), q.reshape(-1, 3), scale),
            "baselines": {},
        }
        braw = {}
        for b, fcs in bases.items():
            if fcs is None:
                ps["baselines"][b] = None
                continue
            braw[b] = D.inverse(np.stack(fcs), spec)  # (n, H, 3)
            ps["baselines"][b] = E.point_metrics(actual.ravel(), braw[b].reshape(-1, 3), scale)
        per_series[s.id] = ps
        for i, o in enumerate(lay.origins):
            for k in range(H):
                row = {
                    "series": s.id,
                    "origin": s.times[o - 1],
                    "time": s.times[o + k],
                    "step": k + 1,
                    "actual": s.y[o + k],
                    "gru_q10": q[i, k, 0],
                    "gru_q50": q[i, k, 1],
                    "gru_q90": q[i, k, 2],
                }
                for b, arr in braw.items():
                    row[b] = arr[i, k, 1]
                rows.append(row)
    return pd.DataFrame(rows), per_series


def _future(model, series, spec, C, H) -> pd.DataFrame:
    rows = []
    for s in series:
        if len(s) < C:
            raise UserInputError(
                f"series {s.id!r} has {len(s)} points; the model needs the last {C} (its context)"
            )
        sc = D.scaler_for(spec, s)
        w = D.windows(s, spec, [len(s)], C, H, with_target=False)
        q = _to_raw(_predict_z(model, w), sc, spec)[0]  # (H, 3)
        for k, t in enumerate(D.future_times(s.times[-1], H, spec.freq)):
            rows.append(
                {
                    "series": s.id,
                    "time": t,
                    "step": k + 1,
                    "q10": q[k, 0],
                    "q50": q[k, 1],
                    "q90": q[k, 2],
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------- predict
def load_forecaster(checkpoint: str | Path) -> tuple[GRUForecaster, D.DataSpec]:
    """The model and its data spec from a run folder or model file."""
    path = resolve_checkpoint(checkpoint)
    model, header = serialization.load(path, return_header=True)
    if not isinstance(model, GRUForecaster) or "spec" not in (header.get("extra") or {}):
        raise UserInputError(
            f"--checkpoint {checkpoint}: not a forecast model (it holds a {type(model).__name__})"
        )
    return model, D.DataSpec.from_dict(header["extra"]["spec"])


def predict(checkpoint: str | Path, df: pd.DataFrame) -> pd.DataFrame:
    """Forecast the next ``horizon`` steps after the end of each series in ``df`` (same columns as in
    training) with the model in ``checkpoint``. Returns series, time, step, q10, q50, q90."""
    model, spec = load_forecaster(checkpoint)
    series = D.to_series(df, spec)
    return _future(model, series, spec, model.config.context, model.config.horizon)


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
    """History, backtest medians, future median and 80% band, one panel per series (at most ``max_series``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ...train import save_figure

    shown = series[:max_series]
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
        ax.fill_between(
            f["time"], f["q10"], f["q90"], color="tab:blue", alpha=0.25, label="80% band"
        )
        ax.plot(f["time"], f["q50"], color="tab:blue", lw=1.5, label="forecast")
        if o0 < len(s):
            ax.axvline(s.times[o0], color="0.6", ls=":", lw=1)
        ax.set_title(f"{s.id}: {spec.target}" if s.id != "series" else spec.target, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def run_builtin(name: str = "weather", **overrides: Any) -> ForecastResult:
    """:func:`fit` on a built-in dataset ("weather": Seattle temp_max 7 days ahead; "stocks": monthly prices
    6 months ahead on a log scale) with its defaults; ``overrides`` replace any of them."""
    df = D.load_builtin(name)
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
    )
    args.update(overrides)
    return fit(df, **args)
