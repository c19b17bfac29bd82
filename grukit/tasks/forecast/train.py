"""Training and running the forecasting network: the engine under :class:`grukit.forecast.GRUForecaster`.

:func:`train_model` trains ``ensemble`` members of :class:`~.model.ForecastNet` (seeds seed, seed + 1, ...)
on windows of the given series (:mod:`.windows` splits them into training and validation windows) and
calibrates their intervals on the validation windows; :func:`predict_quantiles` runs a model at given
(series, origin) pairs and :func:`future_quantiles` after each series' end; :func:`save_model` and
:func:`load_forecaster` write and read a model folder (``model.safetensors`` with the data spec in its
header, ``member-<k>/model.safetensors``, ``ensemble.json``: the files of a run folder).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ...errors import UserInputError
from ...train import RunDir, TaskModule, load_task_model, seed_everything
from ...train import fit as fit_run
from ...train.run import check_model_fits, resolve_checkpoint
from . import calibrate as Q
from . import data as D
from .ensemble import Ensemble, member_dir, read_manifest, save_manifest
from .model import ForecastNet, pinball_loss
from .windows import (
    calibration_windows,
    last_windows_split,
    split_windows,
)

TASK = "forecast"
#: with more training windows than this, the defaults are batches of 256 and this many windows per epoch
BIG_WINDOWS = 16384


class ForecastModule(TaskModule):
    """Trains a :class:`ForecastNet` on (past, future, target, tmask) batches with the pinball loss."""

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


@dataclasses.dataclass
class Trained:
    """What :func:`train_model` returns: the (calibrated) model and how it was trained."""

    model: Ensemble
    #: the toolkit's FitResult of each member (history, epochs_run, best_epoch, wall_time_s)
    fits: list[Any]
    #: the validation windows the calibration used (past, future, target, tmask on the z scale, sidx)
    calibration: dict[str, np.ndarray]
    split_info: dict[str, Any]
    batch_size: int
    epoch_windows: int
    #: ids of the series whose last windows were held out of training (validation), for selection
    held_out: tuple[str, ...] = ()
    #: series id → the first validation origin held out of training (the model saw no target from there
    #: on): the windows selection may score the GRU on
    held_from: dict[str, int] = dataclasses.field(default_factory=dict)
    #: False on a DDP rank other than 0 (it only trains; ``model`` is then member 0 uncalibrated)
    rank_zero: bool = True


def train_model(
    fit_series: Sequence[D.Series],
    spec: D.DataSpec,
    opts: Any,
    *,
    run: RunDir | None = None,
    resume: str | Path | None = None,
    progress: bool = False,
    trainer_kwargs: dict[str, Any] | None = None,
    fit_options: dict[str, Any] | None = None,
) -> Trained:
    """Train ``opts.ensemble`` members on windows of ``fit_series`` (the part of each series a model may
    see; the scalers in ``spec`` already fitted) and calibrate them (``opts.conformal``).

    ``opts`` is a :class:`~.config.ForecastOptions` with ``context`` resolved. With ``run`` the members
    train in that run folder (member k ≥ 1 in ``member-<k>/``; ``ensemble.json`` is written there, and
    ``resume`` continues it); without, in a temporary folder that is removed afterwards. ``fit_options``
    (``inputs``, ``finish``, ``resume_command``) go to member 0's :func:`grukit.train.fit`.
    """
    if run is None:
        with tempfile.TemporaryDirectory(prefix="grukit-forecast-") as tmp:
            return _train(
                fit_series,
                spec,
                opts,
                RunDir(Path(tmp), task=TASK, created=True),
                None,
                progress,
                trainer_kwargs,
                plot=False,
            )
    return _train(
        fit_series,
        spec,
        opts,
        run,
        resume,
        progress,
        trainer_kwargs,
        plot=True,
        fit_options=fit_options,
    )


def _train(
    fit_series, spec, opts, run, resume, progress, trainer_kwargs, plot, fit_options=None
) -> Trained:
    C, H = int(opts.context), int(opts.horizon)
    split = last_windows_split(fit_series, spec, C, H)
    train_w, val_w, split_info = split or split_windows(fit_series, spec, C, H, opts.seed)
    quantiles = tuple(opts.quantiles)
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

        def build():
            return ForecastNet(
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

        if k == 0:  # refused before any of it is allocated
            check_model_fits(build, f"--hidden {opts.hidden} --layers {opts.layers}")
        seed_everything(seed_k)
        model = build()
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
            plot=plot,
            trainer_kwargs=trainer_kwargs,
            **((fit_options or {}) if k == 0 else {}),
        )
        if not res.trainer.is_global_zero:  # other DDP ranks only train
            return Trained(Ensemble([model]), [res], {}, split_info, bs, 0, rank_zero=False)
        members.append(res.best_model())
        fits.append(res)
    best = Ensemble(members)
    cal = calibration_windows(val_w)
    held = (
        tuple(D.ids_of(val_w.panel.series))
        if split_info.get("val_from") != "training windows"
        else ()
    )
    held_from: dict[str, int] = {}
    if held:
        start = np.full(len(held), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(start, val_w.sidx, val_w.origins)
        held_from = {sid: int(o) for sid, o in zip(held, start)}
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
    return Trained(
        best,
        fits,
        cal,
        {**split_info, "train_windows": len(train_w)},
        bs,
        min(epoch_windows or len(train_w), len(train_w)),
        held_out=held,
        held_from=held_from,
    )


#: windows per network pass when predicting: the input projection of a pass, (C·chunk, 3·hidden) floats,
#: then stays in the CPU's cache between the GEMM that writes it and the recurrence that reads it (1024
#: windows: ~20% faster than 4096 at hidden 64, the same numbers: each window's rows are computed alone;
#: on AMD EPYC Zen 4, 1 thread, process CPU: 256 → 33-36, 1024 → 30-31, 4096 → 40-41 µs a window)
PREDICT_CHUNK = 1024


@torch.inference_mode()  # no autograd bookkeeping at all (~3% less than no_grad; the same bits)
def conformal_offsets(
    model: Ensemble, windows: dict[str, np.ndarray], chunk: int = PREDICT_CHUNK
) -> np.ndarray:
    """Split-conformal corrections (H, L) of ``model``'s (uncalibrated) intervals on held-out windows
    (run ``chunk`` windows at a time: the activations of every window at once grow with the panel)."""
    raw = model.with_offsets(None)
    past, future = windows["past"], windows["future"]
    zq = np.concatenate(
        [
            raw(
                torch.from_numpy(past[a : a + chunk]), torch.from_numpy(future[a : a + chunk])
            ).numpy()
            for a in range(0, max(len(past), 1), chunk)
        ]
    )
    return Q.conformal_offsets(zq, windows["target"], model.quantiles, mask=windows["tmask"])


@torch.inference_mode()
def predict_quantiles(
    model: ForecastNet | Ensemble, panel: D.Panel, sidx, origins, chunk: int = PREDICT_CHUNK
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


def future_quantiles(
    model: Ensemble, series: Sequence[D.Series], spec: D.DataSpec, panel: D.Panel | None = None
) -> np.ndarray:
    """Quantiles (N, H, Q) of the H steps after the end of each series (a context longer than a series is
    left-padded, except for a model without the observed-flag input, which needs the last C points).
    Future-known covariates must be given for all H steps (:func:`~.data.check_future_covariates`).
    ``panel``: the ``D.Panel(series, spec, C, H)`` already built (the backtest's), reused."""
    C, H = model.config.context, model.config.horizon
    D.check_future_covariates(series, spec, H)
    lengths = D.lengths_of(series)
    short = np.flatnonzero(lengths < C)
    if len(short) and not spec.observed_input:
        raise UserInputError(
            f"series {D.ids_of(series)[short[0]]!r} has {lengths[short[0]]} points; this model "
            f"(trained with --scaling series on long series only) needs the last {C} (its context)"
        )
    if panel is None:
        panel = D.Panel(series, spec, C, H)
    return predict_quantiles(model, panel, np.arange(len(series)), lengths)


# --------------------------------------------------------------------------------------- model files
def _load_member(checkpoint: str | Path) -> tuple[ForecastNet, dict]:
    model, _, header = load_task_model(checkpoint, Path("-"), ForecastNet, TASK, return_header=True)
    if "spec" not in (header.get("extra") or {}):
        raise UserInputError(
            f"--checkpoint {checkpoint}: the model file holds no forecast data spec"
        )
    return model, header["extra"]["spec"]


def load_forecaster(checkpoint: str | Path) -> tuple[Ensemble, D.DataSpec]:
    """The model and its data spec from a run folder or model file (no shipped forecast model).

    A run folder (or its ``model.safetensors``) with an ``ensemble.json`` gives every member and the
    calibration it lists, so the forecast is the training run's; any other model file is one uncalibrated
    member. Files written before the network was renamed ``ForecastNet`` load too."""
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


def save_model(model: Ensemble, spec: D.DataSpec, folder: Path, info: dict | None = None) -> Path:
    """Write ``model`` into ``folder`` as a run folder holds it: ``model.safetensors`` (member 0, the data
    spec in its header), ``member-<k>/model.safetensors`` and ``ensemble.json``."""
    from ...serialization import save

    extra = {"spec": dataclasses.asdict(spec)}
    for k, m in enumerate(model.member_list):
        f = folder / ("model.safetensors" if k == 0 else f"{member_dir(k)}/model.safetensors")
        save(m, f, task=TASK, extra=extra)
    return save_manifest(folder, len(model.members), model.quantiles, model.offsets, info=info)
