"""The main job: fit a GRU forecaster, backtest it against baselines, forecast the future, write the run.

fit(df, target=..., time_col=...)  →  ForecastResult   (the CLI's ``grukit forecast`` calls this)
predict(checkpoint, df)            →  DataFrame of future quantiles

One global model is trained on windows sampled from every series (:class:`~.data.Panel`). Each series'
backtest origins are its last ``backtest`` origins, ``stride`` apart, ending at its own end (``backtest=1``:
the competition protocol, the last ``horizon`` points forecast from the point before them). The model trains
on what comes before each series' first origin; validation (early stopping, the saved model) uses the last
windows of a held-out share of the series, so every other series is trained on up to its first origin.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from ...errors import UserInputError
from ...train import RunDir, TaskModule, load_task_model, resumed_config, seed_everything
from ...train import fit as fit_run
from ...train.run import open_run, resolve_checkpoint
from . import calibrate as Q
from . import data as D
from . import evaluate as E
from .config import RESUME_KEEP, SkippedSeriesWarning, build_options
from .ensemble import Ensemble, member_dir, read_manifest, save_manifest
from .model import GRUForecaster, pinball_loss

TASK = "forecast"
#: series with fewer points than this before their first backtest origin cannot be trained on
MIN_FIT_POINTS = 2
#: with more series than this, validation holds out the last windows of a random VAL_SHARE of them
MAX_ALL_VAL_SERIES = 20
VAL_SHARE = 0.2
#: with more training windows than this, the defaults are batches of 256 and this many windows per epoch
BIG_WINDOWS = 16384


@dataclasses.dataclass
class ForecastResult:
    """What :func:`fit` returns: the run folder, metrics, per-origin backtest and the future forecast."""

    run: RunDir
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

    def backtest_quantiles(self, n_members: int | None = None, conformal: bool | None = None):
        """Backtest quantiles (N origins, H, Q) on the data scale of a variant of this run's model: its
        first ``n_members`` members (default all), calibrated on the run's validation windows or not
        (default: as the run was). Rows follow ``backtest`` (series, then origin)."""
        members = self.model.member_list[: n_members or len(self.model.members)]
        ens = Ensemble(members)
        use = (self.model.offsets is not None) if conformal is None else conformal
        if use:
            if self.calibration_windows is None:
                raise ValueError("this result holds no calibration windows")
            ens = ens.with_offsets(conformal_offsets(ens, self.calibration_windows))
        panel, sidx, origins = self.backtest_windows  # type: ignore[misc]
        return _predict(ens, panel, sidx, origins)

    def table(self):
        """The rich metrics table (model and baselines, best per metric marked)."""
        rows = {"gru": self.metrics["model"], **self.metrics.get("baselines", {})}
        m = self.metrics
        return E.render_table(
            rows,
            title=f"{m['dataset']}: backtest over {m['backtest_origins']} origin(s) × horizon "
            f"{m['horizon']}, {m['n_series_scored']} series"
            + (f" ({m['n_series_skipped']} skipped)" if m["n_series_skipped"] else ""),
        )


class ForecastModule(TaskModule):
    """Trains a :class:`GRUForecaster` on (past, future, target, tmask) batches with the pinball loss."""

    def step(self, batch, stage):
        past, future, target, *rest = batch
        mask = rest[0] if rest else None
        pred = self.model(past, future)
        qs = self.model.config.quantiles
        loss = pinball_loss(pred, target, quantiles=qs, mask=mask)
        if stage == "train":
            return loss
        err = (pred[..., Q.median_index(qs)] - target).abs()
        mae = err.mean() if mask is None else (err * mask).sum() / mask.sum().clamp_min(1.0)
        return {"loss": loss, "mae": mae}


# --------------------------------------------------------------------------------------- layout
def backtest_origins(T: int, H: int, n: int, S: int) -> list[int]:
    """The ``n`` backtest origins of a series of length T: the last at T − H, ``S`` apart.

    >>> backtest_origins(100, 7, 3, 7)
    [79, 86, 93]
    """
    return [T - H - (n - 1 - i) * S for i in range(n)]


def _default_context(spec: D.DataSpec, H: int) -> int:
    m = spec.season_length
    return int(min(max(4 * H, 2 * m, 24), 96))


class WindowSampler:
    """(series, origin) pairs of a :class:`~.data.Panel`, gathered into model batches by ``collate``.

    A DataLoader over ``TensorDataset(arange(len(pairs)))`` with ``collate_fn=sampler.collate`` draws windows
    uniformly over every valid origin of every series (each series in proportion to its length).
    """

    def __init__(
        self, panel: D.Panel, sidx: np.ndarray, origins: np.ndarray, with_mask: bool = True
    ) -> None:
        self.panel = panel
        self.sidx = np.asarray(sidx, dtype=np.int64)
        self.origins = np.asarray(origins, dtype=np.int64)
        #: False: batches are (past, future, target), every target observed (the single-series recipe)
        self.with_mask = with_mask

    def __len__(self) -> int:
        return len(self.sidx)

    def dataset(self) -> TensorDataset:
        return TensorDataset(torch.arange(len(self)))

    def collate(self, items) -> tuple[torch.Tensor, ...]:
        idx = torch.stack([it[0] for it in items]).numpy()
        w = self.panel.windows(self.sidx[idx], self.origins[idx])
        keys = (
            ("past", "future", "target", "tmask")
            if self.with_mask
            else ("past", "future", "target")
        )
        return tuple(torch.from_numpy(w[k]) for k in keys)


def legacy_layout(T: int, C: int, H: int) -> tuple[range, range] | None:
    """Training and validation origins of one series cut to its first backtest origin (length T), as
    the single-series recipe has them; None when the series is too short for it.

    Every window lies inside the series (full context, full target). Validation: the last
    ``max(H, n // 10)`` origins (n = the full-context, full-target origins); training: the origins whose
    targets end before the first validation target.

    >>> legacy_layout(100, 10, 5)
    (range(10, 84), range(88, 96))
    """
    n_val = max(H, (T - H - C + 1) // 10)
    val_first = T - H - n_val + 1
    if val_first - H - C + 1 < 1:
        return None
    return range(C, val_first - H + 1), range(val_first, T - H + 1)


def legacy_split(
    fit_series: list[D.Series], spec: D.DataSpec, C: int, H: int
) -> tuple[WindowSampler, WindowSampler, dict[str, Any]] | None:
    """The recipe of the per-series scaled presets (weather, stocks), before the global model: the last
    windows of every series validate, the windows before them train, no window is padded or masked (so
    the model has no observed-flag input: ``spec.observed_input`` is set False). None (use
    :func:`split_windows`) unless ``spec.scaling == "series"``, there are at most 20 series and each is
    long enough (:func:`legacy_layout`)."""
    if spec.scaling != "series" or not fit_series or len(fit_series) > MAX_ALL_VAL_SERIES:
        return None
    lays = [legacy_layout(len(s), C, H) for s in fit_series]
    if any(lay is None for lay in lays):
        return None
    spec.observed_input = False
    panel = D.Panel(fit_series, spec, C, H)
    parts = {}
    for k in (0, 1):  # 0: training, 1: validation
        sidx = np.concatenate([np.full(len(lay[k]), i) for i, lay in enumerate(lays) if lay])
        orig = np.concatenate([np.asarray(lay[k]) for lay in lays if lay])
        parts[k] = WindowSampler(panel, sidx, orig, with_mask=False)
    info = {
        "val_series": len(fit_series),
        "val_windows": len(parts[1]),
        "val_from": "last windows of every series",
        "train_windows": len(parts[0]),
    }
    return parts[0], parts[1], info


def split_windows(
    fit_series: list[D.Series], spec: D.DataSpec, C: int, H: int, seed: int
) -> tuple[WindowSampler, WindowSampler, dict[str, Any]]:
    """Training and validation windows from the parts of the series before their first origin.

    Validation holds out the last ``max(1, n // 10)`` full-target windows (n = the series' full-target
    origins) of every series when there are at most 20, else of a random 20% of them (at least 20). A
    held-out series trains only on targets before its first validation origin; every other series trains on
    all of its windows, up to the most recent.
    """
    rng = np.random.default_rng(seed)
    n = len(fit_series)
    val_first = {}
    for i, s in enumerate(fit_series):
        n_full = len(s) - H
        k = max(1, n_full // 10)
        first = len(s) - H - k + 1
        if n_full >= 1 and first >= MIN_FIT_POINTS:
            val_first[i] = first
    elig = sorted(val_first)
    if len(elig) > MAX_ALL_VAL_SERIES:
        size = max(MAX_ALL_VAL_SERIES, round(VAL_SHARE * n))
        elig = sorted(rng.choice(elig, size=min(size, len(elig)), replace=False).tolist())
    val_set = set(elig)
    heads = [s.head(val_first[i]) if i in val_set else s for i, s in enumerate(fit_series)]
    train_panel = D.Panel(heads, spec, C, H)
    ts, to = [], []
    for i in range(n):
        o = train_panel.origins(i)
        ts.append(np.full(len(o), i))
        to.append(o)
    train = WindowSampler(train_panel, np.concatenate(ts), np.concatenate(to))
    if val_set:
        val_series = [fit_series[i] for i in elig]
        val_panel = D.Panel(val_series, spec, C, H)
        vs, vo = [], []
        for j, i in enumerate(elig):
            o = np.arange(val_first[i], len(fit_series[i]) - H + 1)
            vs.append(np.full(len(o), j))
            vo.append(o)
        val = WindowSampler(val_panel, np.concatenate(vs), np.concatenate(vo))
        info = {"val_series": len(elig), "val_windows": len(val), "val_from": "held-out windows"}
    else:  # every series is too short to hold windows out: validate on the training windows
        val = train
        info = {"val_series": 0, "val_windows": len(val), "val_from": "training windows"}
    info["train_windows"] = len(train)
    return train, val, info


def calibration_windows(val: WindowSampler) -> dict[str, np.ndarray]:
    """The validation windows as arrays: past, future, target (z scale), tmask (1 = observed) and sidx (the
    window's series in the validation panel)."""
    w = val.panel.windows(val.sidx, val.origins)
    return {**{k: w[k] for k in ("past", "future", "target", "tmask")}, "sidx": val.sidx.copy()}


@torch.no_grad()
def conformal_offsets(model: Ensemble, windows: dict[str, np.ndarray]) -> np.ndarray:
    """Split-conformal corrections (H, L) of ``model``'s (uncalibrated) intervals on held-out windows."""
    zq = model.with_offsets(None)(
        torch.from_numpy(windows["past"]), torch.from_numpy(windows["future"])
    ).numpy()
    return Q.conformal_offsets(zq, windows["target"], model.quantiles, mask=windows["tmask"])


@torch.no_grad()
def _predict(
    model: GRUForecaster | Ensemble, panel: D.Panel, sidx, origins, chunk: int = 4096
) -> np.ndarray:
    """Quantiles (N, H, Q) on the data scale at the given (series, origin) pairs."""
    model.eval()
    sidx = np.asarray(sidx, dtype=np.int64)
    origins = np.asarray(origins, dtype=np.int64)
    out = []
    for a in range(0, len(sidx), chunk):
        s, o = sidx[a : a + chunk], origins[a : a + chunk]
        w = panel.windows(s, o)
        zq = model(torch.from_numpy(w["past"]), torch.from_numpy(w["future"])).double().numpy()
        out.append(panel.to_raw(zq, w["level"], w["scale"], s))
    return np.concatenate(out) if out else np.zeros((0, panel.H, len(model.config.quantiles)))


# --------------------------------------------------------------------------------------- fit
def fit(
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
    """Train one GRU forecaster on all series of ``df`` and backtest it against the statsforecast baselines.

    ``df`` has a time column (dates, or integer steps), a numeric target and optionally an id column
    (several series), past-only covariates (numeric or categorical), future-known covariates
    (``future_covariates``: their values for the steps after a series' last target value come from rows
    with the target empty; a series that lacks them is refused before training) and static covariates
    (``static_covariates``: one value per series). The last ``backtest`` origins
    (``stride`` apart, default ``horizon``) of each series are held out, ending at the series' own end; the
    model trains on what comes before. A series with fewer than 2 points before its first origin is skipped
    (one SkippedSeriesWarning names them; ``strict=True`` makes it an error). Writes the run folder
    (model.safetensors, config.json, metrics.json, log.csv, backtest.csv, forecast.csv, forecast.png) and
    returns a :class:`ForecastResult`. Keyword ``options`` are :class:`ForecastOptions` fields (covariates,
    id_col, horizon, context, backtest, scaling, seasonal, hidden, epochs, baselines, seed, ...).

    An ``output_dir`` that already holds files is refused unless ``overwrite`` (the toolkit's
    :func:`grukit.train.open_run` rules). ``resume`` continues the run in that folder with its own options (``config.json``); an option given now
    (``given``: the names, default those that differ from the defaults) that conflicts is refused.
    """
    t_start = time.perf_counter()
    opts = build_options(target, time_col, **options)
    if resume is not None:
        opts = resumed_config(resume, opts, keep=RESUME_KEEP, given=given)
    spec = D.spec_from_options(df, opts)
    H, n_bt = opts.horizon, opts.backtest
    C = _default_context(spec, H) if opts.context is None else int(opts.context)
    S = H if opts.stride is None else int(opts.stride)
    opts = dataclasses.replace(
        opts, freq=spec.freq, season_length=spec.season_length, context=C, stride=S, log=spec.log
    )
    series = D.to_series(df, spec)
    D.check_future_covariates(
        series, spec, H
    )  # the forecast after the data needs them: check first
    first = {s.id: backtest_origins(len(s), H, n_bt, S)[0] for s in series}
    skipped = [s.id for s in series if first[s.id] < MIN_FIT_POINTS]
    if skipped:
        need = MIN_FIT_POINTS + H + (n_bt - 1) * S
        msg = (
            f"{len(skipped)} of {len(series)} series have fewer than {need} points (horizon "
            f"{H} + {n_bt} backtest origin(s) + {MIN_FIT_POINTS} to train on): "
            + ", ".join(map(repr, skipped[:20]))
            + (f" and {len(skipped) - 20} more" if len(skipped) > 20 else "")
        )
        if opts.strict or len(skipped) == len(series):
            raise UserInputError(
                msg
                + ("" if opts.strict else "; nothing left to train on")
                + " (lower --horizon or --backtest)"
            )
        warnings.warn(msg + "; they are skipped", SkippedSeriesWarning, stacklevel=2)
    scored = [s for s in series if s.id not in set(skipped)]
    D.fit_scalers(scored, spec, {s.id: first[s.id] for s in scored})
    fit_series = [s.head(first[s.id]) for s in scored]
    D.fit_covariate_scalers(fit_series, spec)
    split = legacy_split(fit_series, spec, C, H)
    train_w, val_w, split_info = split or split_windows(fit_series, spec, C, H, opts.seed)

    run, _ = open_run(TASK, output_dir=output_dir, resume=resume, overwrite=overwrite)
    quantiles = tuple(opts.quantiles)
    with run.guard():
        big = len(train_w) > BIG_WINDOWS
        bs = opts.batch_size or (256 if big else 64)
        epoch_windows = opts.epoch_windows or (BIG_WINDOWS if big else None)
        limit = opts.limit_train_batches
        if limit is None and epoch_windows and epoch_windows < len(train_w):
            limit = max(1, math.ceil(epoch_windows / bs))
        members, fits = [], []
        for k in range(opts.ensemble):  # member k: seed + k; member 0 is the run folder's own model
            seed_k = opts.seed + k
            run_k = run if k == 0 else RunDir(run.path / member_dir(k), task=TASK, created=True)
            resume_k = resume if k == 0 else None
            if k and resume is not None and run_k.last_ckpt.exists():
                resume_k = run_k.path
            seed_everything(seed_k)
            model = GRUForecaster(
                train_w.panel.past_features,
                train_w.panel.future_features,
                C,
                H,
                hidden_size=opts.hidden,
                num_layers=opts.layers,
                dropout=opts.dropout,
                relative=opts.relative,
                seasonal_base=spec.seasonal == "snaive" and spec.seasonal_inputs,
                quantiles=quantiles,
            )
            module = ForecastModule(model, lr=opts.lr, weight_decay=opts.weight_decay)
            train_dl = DataLoader(
                train_w.dataset(), batch_size=bs, shuffle=True, collate_fn=train_w.collate
            )
            val_dl = DataLoader(val_w.dataset(), batch_size=1024, collate_fn=val_w.collate)
            res = fit_run(
                module,
                train_dl,
                val_dl,
                task=TASK,
                run=run_k.mkdir(),
                epochs=opts.epochs,
                seed=seed_k,
                devices=opts.devices,
                num_nodes=opts.num_nodes,
                strategy=opts.strategy,
                accelerator=opts.accelerator,
                resume=resume_k,
                patience=opts.patience,
                gradient_clip=1.0,
                limit_train_batches=limit,
                progress=progress,
                save_extra={"spec": dataclasses.asdict(spec)},
                config=dataclasses.asdict(dataclasses.replace(opts, seed=seed_k)),
            )
            if not res.trainer.is_global_zero:
                return None  # type: ignore[return-value]  # other DDP ranks only train
            members.append(res.best_model())
            fits.append(res)
        res = fits[0]
        best = Ensemble(members)
        cal = calibration_windows(val_w)
        offsets = conformal_offsets(best, cal) if opts.conformal else None
        best = best.with_offsets(offsets)
        save_manifest(
            run.path,
            len(members),
            quantiles,
            offsets,
            info={
                "seeds": [opts.seed + k for k in range(len(members))],
                "calibration_windows": int(len(cal["target"])),
                "calibration_from": split_info["val_from"],
            },
        )
        full = D.Panel(scored, spec, C, H)
        bt, per_series, bt_windows = _backtest(best, full, first, opts)
        fc = _future(best, series, spec, C, H)
        model_m = E.average([p["model"] for p in per_series.values()])
        base_m = {
            b: E.average([p["baselines"][b] for p in per_series.values()]) for b in opts.baselines
        }
        best_val = [r.get("val_loss") for r in res.history if r.get("val_loss") is not None]
        extra: dict[str, Any] = dict(
            horizon=H,
            context=C,
            season_length=spec.season_length,
            freq=spec.freq,
            backtest_origins=n_bt,
            stride=S,
            target=opts.target,
            log_scale=spec.log,
            scaling=spec.scaling,
            seasonal=spec.seasonal,
            series=len(series),
            n_series_scored=len(scored),
            n_series_skipped=len(skipped),
            skipped_series=skipped,
            epochs_run=res.epochs_run,
            best_epoch=res.best_epoch,
            best_val_loss=min(best_val) if best_val else None,
            train_time_s=round(sum(f.wall_time_s for f in fits), 3),
            quantiles=list(quantiles),
            ensemble=len(members),
            ensemble_seeds=[opts.seed + k for k in range(len(members))],
            members_epochs_run=[f.epochs_run for f in fits],
            conformal=offsets is not None,
            conformal_offsets=None if offsets is None else offsets.round(6).tolist(),
            calibration_windows=int(len(cal["target"])),
            batch_size=bs,
            epoch_windows=min(epoch_windows or len(train_w), len(train_w)),
            **split_info,
        )
        if len(scored) > 1:
            extra["per_series"] = per_series
        run.write_metrics(
            task=TASK,
            dataset=opts.dataset,
            split="backtest",
            model=model_m,
            baselines=base_m,
            seed=opts.seed,
            wall_time_s=time.perf_counter() - t_start,
            **extra,
        )
        metrics = json.loads(run.file("metrics.json").read_text())
        _write_csv(bt, run.file("backtest.csv"))
        _write_csv(fc, run.file("forecast.csv"))
        plot_forecast(scored, bt, fc, spec, run.file("forecast.png"), first_origins=first)
    return ForecastResult(
        run=run,
        metrics=metrics,
        backtest=bt,
        forecast=fc,
        model=best,
        spec=spec,
        history=res.history,
        calibration_windows=cal,
        backtest_windows=bt_windows,
    )


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    df.to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(path)


def _backtest(
    model, panel: D.Panel, first: dict[str, int], opts
) -> tuple[pd.DataFrame, dict, tuple]:
    """Every series' backtest origins: GRU quantiles, baselines from the same histories, metrics; and the
    (panel, series index, origins) of the rows."""
    H, m = panel.H, panel.spec.season_length
    sidx, origins = [], []
    for i, s in enumerate(panel.series):
        o = backtest_origins(len(s), H, opts.backtest, opts.stride)
        sidx += [i] * len(o)
        origins += o
    sidx_a, orig_a = np.asarray(sidx), np.asarray(origins)
    levels = tuple(model.config.quantiles)
    nq, mid = len(levels), Q.median_index(levels)
    q = _predict(model, panel, sidx_a, orig_a)  # (N, H, Q)
    hists = [panel.series[i].y[:o][-opts.baseline_history :] for i, o in zip(sidx, origins)]
    bases = E.statsforecast_baselines(hists, H, m, opts.baselines, quantiles=levels)
    per_series, frames = {}, []
    for i, s in enumerate(panel.series):
        rows = np.nonzero(sidx_a == i)[0]
        oi = orig_a[rows]
        actual = np.stack([s.y[k : k + H] for k in oi])  # (n, H)
        scale = E.mase_scale(s.y[: first[s.id]], m)
        ps = {
            "model": E.point_metrics(actual.ravel(), q[rows].reshape(-1, nq), scale, levels),
            "baselines": {
                b: E.point_metrics(actual.ravel(), arr[rows].reshape(-1, nq), scale, levels)
                for b, arr in bases.items()
            },
        }
        per_series[s.id] = ps
        tidx = (oi[:, None] + np.arange(H)[None, :]).ravel()
        frame = {
            "series": s.id,
            "origin": np.repeat(np.asarray(s.times[oi - 1]), H),
            "time": np.asarray(s.times[tidx]),
            "step": np.tile(np.arange(1, H + 1), len(oi)),
            "actual": actual.ravel(),
            **{f"gru_{Q.column_name(lv)}": q[rows, :, j].ravel() for j, lv in enumerate(levels)},
        }
        for b, arr in bases.items():
            frame[b] = arr[rows, :, mid].ravel()
        frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True), per_series, (panel, sidx_a, orig_a)


def _future(model, series, spec, C, H) -> pd.DataFrame:
    """The next H steps after the end of each series (a context longer than a series is left-padded,
    except for a model without the observed-flag input, which needs the last C points). Future-known
    covariates must be given for all H steps (:func:`~.data.check_future_covariates`)."""
    D.check_future_covariates(series, spec, H)
    short = [s for s in series if len(s) < C]
    if short and not spec.observed_input:
        raise UserInputError(
            f"series {short[0].id!r} has {len(short[0])} points; this model (trained with "
            f"--scaling series on long series only) needs the last {C} (its context)"
        )
    panel = D.Panel(series, spec, C, H)
    lengths = np.array([len(s) for s in series])
    q = _predict(model, panel, np.arange(len(series)), lengths)
    levels = model.config.quantiles
    frames = []
    for i, s in enumerate(series):
        frames.append(
            pd.DataFrame(
                {
                    "series": s.id,
                    "time": np.asarray(D.future_times(s.times[-1], H, spec.freq)),
                    "step": np.arange(1, H + 1),
                    **{Q.column_name(lv): q[i, :, j] for j, lv in enumerate(levels)},
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------- predict
def _load_member(checkpoint: str | Path) -> tuple[GRUForecaster, dict]:
    model, _, header = load_task_model(
        checkpoint, Path("-"), GRUForecaster, TASK, return_header=True
    )
    if "spec" not in (header.get("extra") or {}):
        raise UserInputError(
            f"--checkpoint {checkpoint}: the model file holds no forecast data spec"
        )
    return model, header["extra"]["spec"]


def load_forecaster(checkpoint: str | Path) -> tuple[Ensemble, D.DataSpec]:
    """The model and its data spec from a run folder or model file (no shipped forecast model).

    A run folder (or its ``model.safetensors``) with an ``ensemble.json`` gives every member and the
    calibration it lists, so the forecast is the training run's; any other model file is one uncalibrated
    member."""
    if checkpoint is None:
        raise UserInputError(
            "forecast predict needs --checkpoint RUN_FOLDER (there is no shipped model)"
        )
    path = resolve_checkpoint(checkpoint)
    first, spec = _load_member(path)
    manifest = read_manifest(path.parent) if path.name == "model.safetensors" else None
    if manifest is None:
        return Ensemble([first]), D.DataSpec.from_dict(spec)
    members = [first]
    for rel in manifest["members"][1:]:
        f = path.parent / rel
        if not f.is_file():
            raise UserInputError(
                f"--checkpoint {checkpoint}: ensemble member {rel} listed in ensemble.json is missing"
            )
        m, spec_k = _load_member(f)
        if spec_k != spec:
            raise UserInputError(f"--checkpoint {checkpoint}: member {rel} has another data spec")
        members.append(m)
    offsets = manifest.get("offsets")
    try:
        ens = Ensemble(members, None if offsets is None else np.asarray(offsets, dtype=np.float64))
    except ValueError as e:
        raise UserInputError(f"--checkpoint {checkpoint}: {e}") from None
    return ens, D.DataSpec.from_dict(spec)


def predict(checkpoint: str | Path, df: pd.DataFrame) -> pd.DataFrame:
    """Forecast the next ``horizon`` steps after the end of each series in ``df`` (same columns as in
    training; with future-known covariates, rows after each series' last target value give their values
    for those steps) with the model in ``checkpoint`` (every member of an ensemble, calibrated as in
    training). Returns series, time, step and one column per quantile level (q10, q50, q90 by default)."""
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
    """History, backtest medians, future median and its widest band, one panel per series (at most ``max_series``)."""
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
        scaling=b.get("scaling", "window"),
        seasonal=b.get("seasonal", "snaive"),
    )
    args.update(overrides)
    return fit(df, **args)
