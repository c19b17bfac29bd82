"""``fit``: one Lightning run into a run folder — seeded, deterministic, resumable, multi-device.

See the package docstring (``grukit.train``) for an example.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import logging
import math
import os
import shutil
import signal
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader, RandomSampler

from .. import serialization
from .._io import DiskFullError, atomic_path, is_disk_full
from ..errors import UserInputError
from .options import parse_devices
from .plots import plot_history
from .run import (
    MODEL_FILE,
    RunDir,
    RunInterrupted,
    TrainingDiverged,
    check_inputs,
    input_fingerprints,
    open_run,
    resolve_resume,
)
from .seed import epoch_seed, seed_everything

#: Key of the weights' checksum inside a ``last.ckpt`` written by :class:`AtomicCheckpointIO`.
CKPT_CHECKSUM = "grukit_state_sha256"


def _checkpoint_checksum(checkpoint: dict[str, Any]) -> str:
    """:func:`grukit.serialization.tensor_checksum` over every tensor in a checkpoint (nested dicts and
    lists are walked; each tensor is named by its path), the checksum key itself left out."""
    found: dict[str, torch.Tensor] = {}

    def walk(obj: Any, path: str) -> None:
        if torch.is_tensor(obj):
            found[path] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                if k != CKPT_CHECKSUM:
                    walk(v, f"{path}/{k}")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{path}/{i}")

    walk(checkpoint, "")
    return serialization.tensor_checksum(found)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, made safe for run folders.

    - save: the checkpoint is serialized in memory, written to a temporary file *beside* its final path and
      renamed over it (:func:`grukit._io.atomic_path`), so ``last.ckpt`` is always either the previous or
      the new checkpoint, never a truncated one, and nothing is staged in the system's temp folder; a full
      disk raises :class:`grukit._io.DiskFullError` naming the final path.
    - load: an empty, truncated, pickled or otherwise unreadable checkpoint is refused with one line
      (:class:`UserInputError`) instead of a loader's traceback; so is one whose model weights do not
      match the checksum written with them (``"grukit_state_sha256"``: every tensor of the checkpoint,
      weights and optimizer state, see :func:`grukit.serialization.tensor_checksum`) or hold NaN/infinity.

    Pass it to Lightning as ``Trainer(plugins=[AtomicCheckpointIO()])`` (:func:`fit` does).
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        final = Path(path)
        checkpoint = {**checkpoint, CKPT_CHECKSUM: _checkpoint_checksum(checkpoint)}
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        final.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(final) as tmp:
            try:
                with open(tmp, "wb") as f:
                    f.write(buf.getbuffer())
            except OSError as e:
                if is_disk_full(e):
                    raise DiskFullError(final) from None
                raise

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        p = Path(path)
        if not p.is_file():
            raise UserInputError(f"--resume: {p}: no such checkpoint")
        if p.stat().st_size == 0:
            raise UserInputError(f"--resume: {p} is empty (the run was killed while writing it?)")
        try:
            ckpt = torch.load(
                p,
                map_location=map_location if map_location is not None else "cpu",
                weights_only=True if weights_only is None else weights_only,
            )
        except Exception as e:
            first = (str(e).strip().split("\n") or [""])[0][:160] or type(e).__name__
            raise UserInputError(
                f"--resume: {p} is not a readable grukit checkpoint ({type(e).__name__}: {first})"
            ) from None
        if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
            raise UserInputError(f"--resume: {p} is not a Lightning checkpoint (no state_dict)")
        state = ckpt["state_dict"]
        stored = ckpt.pop(CKPT_CHECKSUM, None)
        if stored is not None and _checkpoint_checksum(ckpt) != stored:
            raise UserInputError(
                f"--resume: {p} is damaged (its tensors do not match the checksum written with "
                f"them); start a new run"
            )
        for name, t in state.items():
            if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise UserInputError(
                    f"--resume: {p} holds non-finite weights ({name}); it is damaged or the run "
                    f"diverged: start a new run"
                )
        return ckpt


class EpochSeed(Callback):
    """Re-seed all RNGs at the start of every epoch from (seed, epoch): shuffling and dropout then do not
    depend on how many random numbers earlier epochs (or a restart) consumed — resume is exact."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        s = epoch_seed(self.seed, trainer.current_epoch)
        seed_everything(s)
        # Lightning creates the epoch's DataLoader iterator before this hook on the first (or resumed) epoch
        # and after it on later ones; each iterator draws a base seed from `loader.generator` (or the global
        # RNG) and a RandomSampler draws its permutation lazily. Private per-epoch generators for both keep
        # the global stream (dropout) and the shuffle order the same in either case.
        for dl in _train_loaders(trainer):
            if isinstance(dl, DataLoader):
                dl.generator = torch.Generator().manual_seed(s + 1)
                sampler = getattr(dl, "sampler", None)
                if isinstance(sampler, RandomSampler):
                    sampler.generator = torch.Generator().manual_seed(s + 2)


def _train_loaders(trainer: L.Trainer) -> list:
    combined = getattr(trainer.fit_loop, "_combined_loader", None)
    if combined is not None:
        return list(combined.flattened)
    dl = trainer.train_dataloader
    return list(dl) if isinstance(dl, (list, tuple)) else [dl]


class RunRecorder(Callback):
    """Per-epoch bookkeeping for the run folder: ``log.csv`` (epoch, step, train_loss, val_*, lr, time_s),
    ``model.safetensors`` whenever ``monitor`` improves (best on validation, via :func:`grukit.save`), and
    ``loss.png`` at the end. Its state travels in ``last.ckpt`` so a resumed run continues the same files."""

    def __init__(
        self,
        run: RunDir,
        monitor: str = "val_loss",
        mode: str = "min",
        task: str | None = None,
        model_attr: str = "model",
        save_extra: dict | None = None,
        save_dtype: torch.dtype | None = None,
        plot: bool = True,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.run, self.monitor, self.mode, self.task = run, monitor, mode, task
        self.model_attr, self.save_extra, self.save_dtype, self.plot = (
            model_attr,
            save_extra,
            save_dtype,
            plot,
        )
        self.history: list[dict] = []
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self._elapsed_before = 0.0
        self._t0 = time.perf_counter()
        self._loss_sum = 0.0
        self._loss_n = 0

    # ------------------------------------------------------------------ state carried in last.ckpt
    def state_dict(self) -> dict[str, Any]:
        return {
            "history": [dict(r) for r in self.history],
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "elapsed": self._elapsed_before + time.perf_counter() - self._t0,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [dict(r) for r in state.get("history", [])]
        self.best_score = state.get("best_score")
        self.best_epoch = state.get("best_epoch")
        self._elapsed_before = float(state.get("elapsed", 0.0))
        self._t0 = time.perf_counter()

    # ------------------------------------------------------------------ hooks
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._loss_sum, self._loss_n = 0.0, 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path is None:
            return
        for (
            name,
            p,
        ) in pl_module.named_parameters():  # a damaged checkpoint can load into NaN weights
            if p.is_floating_point() and not bool(torch.isfinite(p).all()):
                raise TrainingDiverged(
                    f"--resume {trainer.ckpt_path}: the checkpoint holds non-finite weights ({name}); "
                    f"it is damaged: start a new run"
                )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            value = float(loss.detach())
            if not math.isfinite(value):
                self._diverged(trainer, "training loss", value)
            self._loss_sum += value
            self._loss_n += 1

    def _diverged(self, trainer: L.Trainer, what: str, value: float) -> None:
        kept = (
            f"the model of epoch {self.best_epoch} is kept"
            if self.best_epoch is not None
            else "no model was kept"
        )
        raise TrainingDiverged(
            f"training diverged: the {what} is {value} at epoch {trainer.current_epoch} (step "
            f"{trainer.global_step}); stopped ({kept}; the run is marked incomplete); try a lower "
            f"learning rate"
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.history or self.history[-1]["epoch"] != trainer.current_epoch:
            self._record(trainer, pl_module)  # no validation this epoch

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.plot and trainer.is_global_zero:
            plot_history(
                self.history, self.run.file("loss.png"), title=self.task, best_epoch=self.best_epoch
            )

    # ------------------------------------------------------------------ helpers
    def _record(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        row: dict[str, Any] = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "train_loss": self._loss_sum / self._loss_n if self._loss_n else None,
        }
        for k, v in sorted(trainer.callback_metrics.items()):
            if k.startswith(("val_", "test_")):
                row[k] = float(v)
        opts = trainer.optimizers
        row["lr"] = float(opts[0].param_groups[0]["lr"]) if opts else None
        row["time_s"] = round(self._elapsed_before + time.perf_counter() - self._t0, 3)
        self.history.append(row)
        score = row.get(self.monitor)
        if score is None and self.monitor not in row and any(k.startswith("val_") for k in row):
            raise KeyError(
                f"monitor {self.monitor!r} is not among the logged metrics {sorted(row)}"
            )
        if score is None and not any(k.startswith("val_") for k in row):
            score = row["train_loss"]  # no validation data: best = lowest training loss
        for k, v in row.items():
            if k.endswith("loss") and v is not None and not math.isfinite(v):
                self.history.pop()
                self._diverged(trainer, k.replace("_", " ").replace("val ", "validation "), v)
        improved = (
            score is not None
            and math.isfinite(score)
            and (
                self.best_score is None
                or (score < self.best_score if self.mode == "min" else score > self.best_score)
            )
        )
        if improved and score is not None:
            self.best_score, self.best_epoch = float(score), trainer.current_epoch
        if trainer.is_global_zero:
            if improved:
                model = getattr(pl_module, self.model_attr)
                serialization.save(
                    model,
                    self.run.model_path,
                    task=self.task,
                    extra=self.save_extra,
                    dtype=self.save_dtype,
                )
            write_log_csv(self.history, self.run.file("log.csv"))


def write_log_csv(history: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write one row per epoch (the union of all keys as columns) atomically."""
    cols: list[str] = []
    for r in history:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in history:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
    return path


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        run: the run folder.
        history: one dict per epoch (the rows of ``log.csv``).
        best_score: the best value of the monitored metric, or None.
        best_epoch: the epoch (0-based) it was reached in, or None.
        epochs_run: epochs trained in total (including those before a resume).
        stopped_early: whether early stopping ended the run.
        wall_time_s: wall time of this call in seconds.
        module: the LightningModule, holding the final (last-epoch) weights.
        trainer: the Lightning trainer.

    ``best_model()`` loads the best-on-validation model from ``model.safetensors``.
    """

    run: RunDir
    history: list[dict]
    best_score: float | None
    best_epoch: int | None
    epochs_run: int
    stopped_early: bool
    wall_time_s: float
    module: L.LightningModule
    trainer: L.Trainer

    @property
    def best_path(self) -> Path:
        """The run's ``model.safetensors`` (the best model on validation)."""
        return self.run.model_path

    def best_model(self, map_location: str | torch.device = "cpu") -> torch.nn.Module:
        """The best-on-validation model, rebuilt from ``model.safetensors`` by :func:`grukit.load`."""
        return serialization.load(self.best_path, map_location=map_location)


def _write_run_files(
    run: RunDir,
    ckpt: Path | None,
    config: Any,
    fingerprints: dict,
    inputs: Any,
    json_files: dict[str, Any] | None,
) -> None:
    """The files a run writes before training: the best model so far (resuming into another folder),
    ``config.json`` (status ``"running"``) and ``json_files``. Called once every option was accepted, so
    a refused option leaves a resumed folder as it was."""
    if ckpt is not None and Path(ckpt).parent.resolve() != run.path.resolve():
        src = Path(ckpt).parent / MODEL_FILE  # keep the best model found before the interruption
        if src.is_file() and not run.model_path.exists():
            with atomic_path(run.model_path) as tmp:
                shutil.copyfile(src, tmp)
    if config is None and ckpt is not None and run.status is not None:
        run.set_status("running")  # a resumed run keeps the options it stored
    else:
        run.write_config(config, inputs=fingerprints if inputs is not None else None)
    for name, obj in (json_files or {}).items():
        run.write_json(name, obj)


class _InterruptWatch(Callback):
    """Notes a KeyboardInterrupt that Lightning caught (it then calls ``sys.exit(1)`` itself)."""

    def __init__(self) -> None:
        self.seen = False

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.seen = True


def _make_trainer(kwargs: dict[str, Any], *, devices: Any, strategy: Any) -> L.Trainer:
    """``L.Trainer(**kwargs)``, with Lightning's refusals of the user's options as one line."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return L.Trainer(**kwargs)
    except (MisconfigurationException, ValueError, RuntimeError, TypeError) as e:
        first = (str(e).strip().split("\n") or [""])[0][:200]
        raise UserInputError(
            f"cannot train with --devices {devices} --strategy {strategy}: {first}"
        ) from None


_NOISE = (
    r".*does not have many workers.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*is smaller than the logging interval.*",
    r".*The number of training batches.*",
    r".*You defined a `validation_step` but have no `val_dataloader`.*",
    r".*Total length of .* across ranks is zero.*",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*LeafSpec.*",
)


@contextlib.contextmanager
def _quiet(enabled: bool):
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        if enabled:
            for pat in _NOISE:
                warnings.filterwarnings("ignore", message=pat)
            for lg in loggers:
                lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, lv in zip(loggers, levels):
                lg.setLevel(lv)


def fit(
    module: L.LightningModule,
    train: Any = None,
    val: Any = None,
    *,
    datamodule: L.LightningDataModule | None = None,
    task: str = "model",
    run: RunDir | None = None,
    output_dir: str | os.PathLike | None = None,
    epochs: int = 10,
    seed: int = 0,
    devices: str | int | list[int] = "auto",
    num_nodes: int = 1,
    strategy: str | Any = "auto",
    accelerator: str = "auto",
    resume: str | os.PathLike | None = None,
    overwrite: bool = False,
    gradient_clip: float | None = 1.0,
    monitor: str = "val_loss",
    mode: str = "min",
    patience: int | None = None,
    min_delta: float = 0.0,
    max_steps: int = -1,
    limit_train_batches: int | float | None = None,
    limit_val_batches: int | float | None = None,
    precision: str | int | None = None,
    deterministic: bool = True,
    progress: bool = True,
    quiet: bool = True,
    model_attr: str = "model",
    save_extra: dict | None = None,
    save_dtype: torch.dtype | None = None,
    config: Any = None,
    inputs: Mapping[str, str | os.PathLike | None] | None = None,
    resume_command: str | None = None,
    finish: bool = True,
    json_files: dict[str, Any] | None = None,
    plot: bool = True,
    callbacks: Iterable[Callback] = (),
    trainer_kwargs: dict | None = None,
) -> FitResult:
    """Train ``module`` with Lightning, seeded and deterministic, and write a run folder.

    Data: ``train``/``val`` dataloaders, or a ``datamodule``. The run folder is ``run`` if given, else
    ``output_dir``, else the folder of ``resume``, else ``runs/<task>-<YYYYmmdd-HHMMSS>/``. It receives
    ``config.json`` (``config``, if given, the ``inputs``' fingerprints and ``"status": "running"``),
    ``log.csv``, ``loss.png``, ``last.ckpt`` (every epoch, for ``resume``) and ``model.safetensors`` =
    ``getattr(module, model_attr)`` at its best ``monitor`` value (``mode`` "min"/"max"; ``val_loss`` is
    logged by :class:`TaskModule`). ``metrics.json`` is the task's to write (see
    :meth:`RunDir.write_metrics`); with ``finish=False`` the task then calls ``result.run.complete()`` last
    of all.

    Faults (docs/toolkit.md): the folder is claimed for the run (a second run on it is refused); every file
    is written beside its final path and renamed into place (``last.ckpt`` through
    :class:`AtomicCheckpointIO`); a full disk raises :class:`grukit._io.DiskFullError`; a non-finite loss
    raises :class:`TrainingDiverged` naming the epoch; Ctrl-C raises :class:`RunInterrupted` whose message
    says how to continue (``resume_command``, default ``grukit <task> train``, + ``--resume RUN``); options
    Lightning refuses (``devices=0``, an unknown ``strategy``) raise :class:`UserInputError`. A folder left
    behind is marked ``interrupted``/``diverged``/``failed`` in ``config.json``.

    ``resume``: a run folder or ``.ckpt``; the run continues to ``epochs`` and ends with the same weights as an
    uninterrupted run (seeded RNGs per epoch, deterministic algorithms). ``devices``, ``num_nodes``,
    ``strategy``, ``accelerator``, ``precision`` go straight to ``lightning.Trainer`` (e.g. ``devices=2,
    strategy="ddp"``). ``patience`` turns on early stopping on ``monitor``; ``gradient_clip`` clips the global
    gradient norm; ``max_steps``/``limit_*_batches`` shorten smoke runs. Seed the model's construction
    yourself (``seed_everything(seed)`` before building it).

    Args:
        module: the LightningModule (usually a :class:`TaskModule`); ``getattr(module, model_attr)`` is the
            grukit model that is saved.
        train: the training DataLoader.
        val: the validation DataLoader (needed for ``monitor="val_*"``).
        task: the task name (run folder name and model-file header).
        epochs: the total number of epochs (also when resuming).
        seed: the run's seed (every epoch re-seeds from (seed, epoch)).
        resume: a run folder or ``.ckpt`` to continue from.
        monitor: the logged metric that picks the saved model; ``mode`` "min" or "max".
        patience: epochs without improvement before stopping early; None: no early stopping.
        config: the run's options, written to ``config.json``.
        inputs: ``{option: path}`` of the files or folders the run reads (``{"--csv": "sales.csv"}``):
            their fingerprints go to ``config.json``; on ``resume`` a changed input is refused.
        resume_command: the command that continues this run, for the Ctrl-C message (default
            ``grukit <task> train``).
        finish: mark the run complete (and release the folder) when training ends. A recipe that writes
            more files afterwards (metrics, forecasts) passes False and calls ``result.run.complete()``
            after its last file.

    Returns:
        A :class:`FitResult`.

    Raises:
        UserInputError: ``epochs`` or ``patience`` below 1, a ``resume`` that names no readable
            checkpoint, changed ``inputs``, options Lightning refuses, a full disk (``DiskFullError``), a
            non-finite loss (``TrainingDiverged``), or the folder in use by another run (``RunBusy``).
        RunInterrupted: Ctrl-C (a KeyboardInterrupt).
        TypeError: ``module`` has no attribute ``model_attr``.

    Examples:
        >>> import tempfile, torch, grukit
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from grukit.train import TaskModule, fit, seed_everything
        >>> class Last(TaskModule):
        ...     def step(self, batch, stage):
        ...         x, y = batch  # x (B, T, I), y (B,)
        ...         out, _ = self.model(x)  # (B, T, H)
        ...         return torch.nn.functional.mse_loss(out[:, -1, 0], y)
        >>> _ = seed_everything(0)
        >>> data = TensorDataset(torch.randn(16, 5, 3), torch.randn(16))
        >>> result = fit(
        ...     Last(grukit.GRU(3, 4, batch_first=True)),
        ...     DataLoader(data, 8),
        ...     DataLoader(data, 8),
        ...     task="toy",
        ...     epochs=2,
        ...     output_dir=tempfile.mkdtemp() + "/run",
        ...     progress=False,
        ...     plot=False,
        ... )
        >>> result.epochs_run, result.run.files(), result.run.status
        (2, ['config.json', 'last.ckpt', 'log.csv', 'model.safetensors'], 'complete')
        >>> type(result.best_model()).__name__
        'GRU'
    """
    if epochs < 1:
        raise UserInputError(f"--epochs must be at least 1, got {epochs}")
    if patience is not None and patience < 1:
        raise UserInputError(f"patience must be at least 1, got {patience}")
    if not hasattr(module, model_attr):
        raise TypeError(
            f"fit expected module.{model_attr} to be the grukit model to save; "
            f"{type(module).__name__} has no attribute {model_attr!r}"
        )
    fingerprints = input_fingerprints(inputs or {})
    if resume is not None:  # refused before anything in the folder is touched
        if fingerprints:
            check_inputs(resolve_resume(resume)[0], fingerprints, resume)
        AtomicCheckpointIO().load_checkpoint(resolve_resume(resume)[1], weights_only=True)
    if run is None:
        run, ckpt = open_run(task, output_dir=output_dir, resume=resume, overwrite=overwrite)
    else:
        ckpt = resolve_resume(resume)[1] if resume is not None else None
        run.mkdir().claim()
    with run.guard():  # no partial output; a folder holding last.ckpt is kept for --resume
        recorder = RunRecorder(
            run,
            monitor=monitor,
            mode=mode,
            task=task,
            model_attr=model_attr,
            save_extra=save_extra,
            save_dtype=save_dtype,
            plot=plot,
        )
        cbs: list[Callback] = [EpochSeed(seed), recorder]
        if patience is not None:
            cbs.append(
                EarlyStopping(monitor=monitor, mode=mode, patience=patience, min_delta=min_delta)
            )
        if progress:
            from lightning.pytorch.callbacks import RichProgressBar

            cbs.append(RichProgressBar(leave=True))
        # last.ckpt after every epoch, replacing the previous one (monitor=None + save_top_k=1 keeps only the
        # latest). save_last=True with save_top_k=0 would write it only when training ends (Lightning 2.6),
        # so a killed run could not resume.
        cbs.append(
            ModelCheckpoint(
                dirpath=run.path,
                filename="last",
                save_top_k=1,
                monitor=None,
                every_n_epochs=1,
                save_on_train_epoch_end=True,
                enable_version_counter=False,
            )
        )
        interrupt = _InterruptWatch()
        cbs.append(interrupt)
        cbs.extend(callbacks)

        kwargs: dict[str, Any] = dict(
            max_epochs=epochs,
            max_steps=max_steps,
            accelerator=accelerator,
            devices=parse_devices(devices),
            num_nodes=num_nodes,
            strategy=strategy,
            deterministic=deterministic,
            gradient_clip_val=gradient_clip,
            callbacks=cbs,
            logger=False,
            enable_checkpointing=True,
            enable_progress_bar=progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=str(run.path),
            log_every_n_steps=1,
            plugins=[AtomicCheckpointIO()],
        )
        if limit_train_batches is not None:
            kwargs["limit_train_batches"] = limit_train_batches
        if limit_val_batches is not None:
            kwargs["limit_val_batches"] = limit_val_batches
        if precision is not None:
            kwargs["precision"] = precision
        kwargs.update(trainer_kwargs or {})

        was_deterministic = torch.are_deterministic_algorithms_enabled()
        sigint = signal.getsignal(signal.SIGINT)
        t0 = time.perf_counter()
        with _quiet(quiet):
            try:
                seed_everything(seed)
                trainer = _make_trainer(kwargs, devices=devices, strategy=strategy)
                _write_run_files(run, ckpt, config, fingerprints, inputs, json_files)
                trainer.fit(
                    module,
                    train_dataloaders=train,
                    val_dataloaders=val,
                    datamodule=datamodule,
                    ckpt_path=str(ckpt) if ckpt is not None else None,
                    weights_only=True,
                )
            except SystemExit as e:
                if (
                    not interrupt.seen
                ):  # Lightning turns Ctrl-C into sys.exit(1); anything else passes
                    raise
                how = resume_command or f"grukit {task} train"
                raise RunInterrupted(
                    f"interrupted; continue with `{how} --resume {run.path}`"
                ) from e
            except KeyboardInterrupt as e:
                how = resume_command or f"grukit {task} train"
                raise RunInterrupted(
                    f"interrupted; continue with `{how} --resume {run.path}`"
                ) from e
            except OSError as e:
                if is_disk_full(e):
                    raise DiskFullError(Path(e.filename) if e.filename else run.path) from None
                raise
            finally:
                torch.use_deterministic_algorithms(was_deterministic)
                with contextlib.suppress(
                    ValueError, TypeError
                ):  # Lightning ignores SIGINT on Ctrl-C
                    signal.signal(signal.SIGINT, sigint)
        wall = time.perf_counter() - t0
        stopped = any(
            isinstance(c, EarlyStopping) and c.stopped_epoch > 0 for c in cbs
        )  # the callback objects given to the Trainer
        if finish and trainer.is_global_zero:
            run.complete()
        return FitResult(
            run=run,
            history=list(recorder.history),
            best_score=recorder.best_score,
            best_epoch=recorder.best_epoch,
            epochs_run=trainer.current_epoch,
            stopped_early=stopped,
            wall_time_s=wall,
            module=module,
            trainer=trainer,
        )
