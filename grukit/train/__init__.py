"""The training toolkit every recipe reuses: Lightning loop, run folders, seeding, shared CLI options.

Pieces
------
- :class:`TaskModule` — LightningModule base: holds the grukit model in ``self.model`` and a ``step(batch,
  stage)`` returning the loss (or ``{"loss": ..., "acc": ...}``); logs ``train_loss``/``val_loss``/``val_acc``;
  builds AdamW or Adam, with ReduceLROnPlateau when given a :class:`Plateau`.
- :func:`fit` — one seeded, deterministic, resumable Lightning run writing a run folder (docs/conventions.md):
  ``model.safetensors`` (best on ``monitor``, via :func:`grukit.save`), ``config.json``, ``log.csv``,
  ``loss.png``, ``last.ckpt`` (for ``resume`` only). Early stopping (``patience``), gradient clipping,
  rich progress bar, and ``devices``/``num_nodes``/``strategy`` passed straight to Lightning.
- :class:`RunDir` — the run folder (``runs/<task>-<YYYYmmdd-HHMMSS>/``): ``write_config``,
  ``write_metrics`` (metrics.json per docs/conventions.md), ``file(name)``, ``guard()`` (removes a folder this
  run created if the block raises), plus :func:`resolve_checkpoint` for ``--checkpoint``.
- :func:`open_run` — the one run-folder/resume path :func:`fit` takes: ``--output-dir`` (refused when it
  already holds files unless ``overwrite``), ``--resume`` (its folder and ``last.ckpt``), or a fresh
  ``runs/<task>-<stamp>/``. :func:`resumed_config` restores a resumed run's options and refuses
  conflicting ones; :func:`load_task_model` loads ``--checkpoint`` or a task's shipped model.
- :func:`seed_everything` — Python/NumPy/torch seeds (+ deterministic algorithms on request);
  :func:`set_threads` for ``--threads``.
- :mod:`grukit.train.options` — typer annotations for every ``train`` command (``--data-dir --output-dir
  --epochs --seed --devices --num-nodes --strategy --resume --overwrite --threads``); light to import
  (typer only).

Usage (a complete recipe in a few lines)::

    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    import grukit
    from grukit.train import TaskModule, fit, seed_everything


    class Tagger(nn.Module):  # a grukit model: config dataclass + from_config
        ...  # (see grukit/serialization.py)


    class TaggerModule(TaskModule):
        def step(self, batch, stage):  # batch from your DataLoader
            x, y = batch  # x (B, T, I), y (B,)
            logits = self.model(x)  # (B, C)
            loss = nn.functional.cross_entropy(logits, y)
            return {"loss": loss, "acc": (logits.argmax(-1) == y).float().mean()}


    seed_everything(0)  # before building the model: init is seeded too
    module = TaggerModule(Tagger(...), lr=3e-3)
    result = fit(
        module,
        DataLoader(train_ds, 32, shuffle=True),
        DataLoader(val_ds, 64),
        task="tagger",
        epochs=20,
        seed=0,
        patience=5,
        monitor="val_loss",
        config={"lr": 3e-3, "epochs": 20},
    )  # → runs/tagger-YYYYmmdd-HHMMSS/
    model = result.best_model()  # grukit.load(run/model.safetensors)
    result.run.write_metrics(
        task="tagger",
        dataset="toy",
        split="test",
        model={"acc": 0.9},
        seed=0,
        wall_time_s=result.wall_time_s,
    )

    # continue an interrupted run to the same final weights (within 1e-6 relative):
    fit(
        TaggerModule(Tagger(...)),
        train_dl,
        val_dl,
        task="tagger",
        epochs=20,
        seed=0,
        resume=result.run.path,
    )
    # two processes: fit(..., devices=2, strategy="ddp", accelerator="cpu")   (gloo on CPU)

In a CLI (``grukit/tasks/<task>/cli.py``) declare the shared options with :mod:`grukit.train.options` and
import this package inside the command body (it imports Lightning).

Rules that make resume exact: all RNGs are re-seeded from (seed, epoch) at each epoch start, so use plain
``DataLoader(shuffle=True)`` (no private generators) and keep randomness inside the training loop;
``last.ckpt`` is written at the end of every epoch.
"""

from __future__ import annotations

from typing import Any

from .run import (
    RunAlreadyComplete,
    RunBusy,
    RunDir,
    RunInterrupted,
    TrainingDiverged,
    check_inputs,
    check_model_fits,
    check_output_dir,
    check_run_complete,
    input_fingerprints,
    load_task_model,
    metrics_record,
    open_run,
    resolve_checkpoint,
    resolve_input,
    resolve_resume,
    resumed_config,
    write_json,
)
from .seed import epoch_seed, seed_everything, set_threads

__all__ = [
    "AtomicCheckpointIO",
    "FitResult",
    "Plateau",
    "RunAlreadyComplete",
    "RunBusy",
    "RunDir",
    "RunInterrupted",
    "TaskModule",
    "TrainingDiverged",
    "check_inputs",
    "check_model_fits",
    "check_output_dir",
    "check_run_complete",
    "epoch_seed",
    "fit",
    "input_fingerprints",
    "load_task_model",
    "metrics_record",
    "open_run",
    "plot_history",
    "resolve_checkpoint",
    "resolve_input",
    "resolve_resume",
    "resumed_config",
    "save_figure",
    "seed_everything",
    "set_threads",
    "write_json",
]

_LAZY = {
    "TaskModule": ".module",
    "Plateau": ".module",
    "fit": ".loop",
    "FitResult": ".loop",
    "AtomicCheckpointIO": ".loop",
    "plot_history": ".plots",
    "save_figure": ".plots",
}


def __getattr__(name: str) -> Any:  # Lightning/matplotlib are imported on first use only
    if name in _LAZY:
        import importlib

        mod = importlib.import_module(_LAZY[name], __name__)
        return getattr(mod, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
