"""Training: truncated BPTT with carried state, through ``grukit.train.fit`` (Lightning).

Each batch holds whole sequences (length-bucketed). With ``chunk=None`` one update uses the whole sequences
(JSB's are short); with ``chunk=K`` the batch is walked in windows of K predicted frames, the GRU state is
carried from window to window (detached), and each window makes one Adam update — long MuseData/Piano-midi
pieces are seen end to end without backpropagating through thousands of steps. Validation and test always
use full sequences and the exact NLL per time step (frame-weighted over the whole split).
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ...train import Plateau, TaskModule
from .data import check_dataset, collate, load_dataset, make_loader
from .model import MusicGRU, nll_sums, predicted_mask, sequence_nll

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ...train.recipe_run import TrainOptions

TASK = "music"


@dataclasses.dataclass
class MusicTrainConfig:
    """Every option of a music training run (saved as the run's config.json)."""

    dataset: str = "jsb"
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.3
    input_dropout: float = 0.0
    zoneout: float = 0.0
    frame_ar: bool = (
        True  # autoregressive-within-frame head (False: independent keys, as in Chung et al.)
    )
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 16
    chunk: int | None = (
        None  # None: full sequences; K: truncated BPTT windows of K frames, state carried
    )
    clip: float = 5.0
    epochs: int = 100
    patience: int = 12  # early stopping on val_loss
    lr_patience: int = 4  # halve the learning rate after this many epochs without improvement
    seed: int = 0
    max_train_sequences: int | None = None  # smoke runs: use only the first N training sequences
    max_minutes: float | None = (
        None  # stop training after this much wall time (then evaluate the best model)
    )


#: Per-dataset defaults (chosen for a 1-thread CPU budget; override any of them on the command line).
RECIPES: dict[str, dict[str, Any]] = {
    "jsb": dict(hidden_size=256, dropout=0.5, input_dropout=0.1, batch_size=8, chunk=None, lr=1e-3),
    "nottingham": dict(
        hidden_size=384, dropout=0.3, batch_size=8, chunk=50, lr=2e-3, lr_patience=2, patience=6
    ),
    "musedata": dict(
        hidden_size=384, dropout=0.3, batch_size=8, chunk=50, lr=2e-3, lr_patience=2, patience=6
    ),
    "piano": dict(
        hidden_size=256,
        dropout=0.4,
        input_dropout=0.1,
        batch_size=4,
        chunk=50,
        lr=2e-3,
        lr_patience=2,
        patience=8,
    ),
}


def recipe(dataset: str, **overrides: Any) -> MusicTrainConfig:
    """The default config for ``dataset`` with ``overrides`` (None values are ignored) applied."""
    key = check_dataset(dataset)
    values = {**RECIPES[key], **{k: v for k, v in overrides.items() if v is not None}}
    return MusicTrainConfig(dataset=key, **values)


#: Command-line spelling of the fields whose flag is not ``--field-name`` (for messages).
FLAGS = {
    "hidden_size": "--hidden",
    "num_layers": "--layers",
    "frame_ar": "--frame-ar/--independent",
}
#: ``grukit music train`` parameter → config field, where they differ.
CLI_FIELDS = {"hidden": "hidden_size", "layers": "num_layers"}


class MusicModule(TaskModule):
    """LightningModule for :class:`MusicGRU`: manual optimization so one batch can make several truncated-BPTT
    updates; logs ``train_loss`` and ``val_loss`` as NLL per predicted frame; halves the learning rate on
    a validation plateau."""

    def __init__(
        self,
        model: MusicGRU,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        chunk: int | None = None,
        clip: float | None = 5.0,
        lr_patience: int = 4,
    ) -> None:
        super().__init__(
            model,
            lr=lr,
            weight_decay=weight_decay,
            plateau=Plateau("val_loss", "min", factor=0.5, patience=lr_patience),
        )  # manual optimization: the base steps the plateau schedule after each validation epoch
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk must be a positive number of frames or None, got {chunk}")
        self.automatic_optimization = False
        self.chunk, self.clip = chunk, clip

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, lengths = batch  # (B, T, 88), (B,)
        opt = self.optimizers()
        steps = x.shape[1] - 1
        mask = predicted_mask(lengths, steps)  # (B, steps)
        window = self.chunk or max(steps, 1)
        h = None
        total, count = x.new_zeros(()), x.new_zeros(())
        for s in range(0, steps, window):
            e = min(s + window, steps)
            m = mask[:, s:e]
            if not bool(m.any()):  # every sequence of the batch has ended
                break
            logits, h = self.model(x[:, s:e], h, next_frames=x[:, s + 1 : e + 1])
            h = h.detach()
            bce, n = nll_sums(logits, x[:, s + 1 : e + 1], m)
            opt.zero_grad()
            self.manual_backward(bce / n)
            if self.clip:
                self.clip_gradients(
                    opt, gradient_clip_val=self.clip, gradient_clip_algorithm="norm"
                )
            opt.step()
            total, count = total + bce.detach(), count + n
        loss = total / count.clamp_min(1)
        self.log(
            "train_loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=max(int(count), 1),
        )
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, lengths = batch
        bce, n = sequence_nll(self.model, x, lengths)
        if int(n) > 0:  # frame-weighted mean over the epoch = Σ BCE / Σ frames (exact NLL per step)
            self.log(
                "val_loss", bce / n, on_step=False, on_epoch=True, prog_bar=True, batch_size=int(n)
            )


def train(
    cfg: MusicTrainConfig,
    data_dir: str | Path | None = None,
    *,
    eval_batch_size: int = 16,
    given: set[str] | None = None,
    **options: Unpack[TrainOptions],
) -> dict[str, Any]:
    """Train, then evaluate the best-on-validation model on valid and test; write the run folder.

    With ``resume`` the run continues to ``cfg.epochs`` with the options stored in its config.json
    (:func:`grukit.train.resumed_config`); an option named in ``given`` — by default every field that
    differs from the dataset's :data:`RECIPES` defaults — that conflicts with the stored run is refused.
    An ``output_dir`` that already holds files is refused unless ``overwrite``.

    Returns the metrics record (also written to ``<run>/metrics.json``).

    ``options`` are the shared training options (:class:`grukit.train.recipe_run.TrainOptions`).
    """
    from ...train.recipe_run import RecipeRun
    from .data import DATA_NAME
    from .evaluate import evaluate_nll, paper_baselines

    if options.get("resume") is not None and given is None:
        base = dataclasses.asdict(recipe(cfg.dataset))
        given = {k for k, v in dataclasses.asdict(cfg).items() if v != base[k]}
        if cfg.dataset != MusicTrainConfig.dataset:
            given.add("dataset")
    run = RecipeRun.start(TASK, cfg, given=given, flags=FLAGS, **options)
    cfg = run.cfg
    data = load_dataset(cfg.dataset, run.data_dir_of(DATA_NAME, data_dir))
    train_seqs = (
        data["train"][: cfg.max_train_sequences] if cfg.max_train_sequences else data["train"]
    )
    model = run.build(
        lambda: MusicGRU(
            cfg.hidden_size,
            cfg.num_layers,
            cfg.dropout,
            cfg.input_dropout,
            cfg.zoneout,
            frame_ar=cfg.frame_ar,
        ),
        f"--hidden {cfg.hidden_size} --layers {cfg.num_layers}",
    )
    model.init_output_bias(torch.as_tensor(np.concatenate(train_seqs)))
    module = MusicModule(
        model,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        chunk=cfg.chunk,
        clip=cfg.clip,
        lr_patience=cfg.lr_patience,
    )
    train_dl = make_loader(train_seqs, cfg.batch_size, shuffle=True)
    val_dl = make_loader(data["valid"], eval_batch_size, shuffle=False)
    t0 = time.perf_counter()
    result = run.fit(
        module,
        train_dl,
        val_dl,
        gradient_clip=None,
        monitor="val_loss",
        patience=cfg.patience,
        save_extra={"dataset": cfg.dataset},
        trainer_kwargs={"max_time": timedelta(minutes=cfg.max_minutes)}
        if cfg.max_minutes
        else None,
    )
    best = result.best_model()
    valid = evaluate_nll(best, data["valid"], batch_size=eval_batch_size)
    test = evaluate_nll(best, data["test"], batch_size=eval_batch_size)
    record = dict(
        task=TASK,
        dataset=cfg.dataset,
        split="test",
        model={
            "nll_per_step": test["nll_per_step"],
            "valid_nll_per_step": valid["nll_per_step"],
            "frames": test["frames"],
        },
        baselines=paper_baselines(cfg.dataset),
        seed=cfg.seed,
        wall_time_s=time.perf_counter() - t0,
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        stopped_early=result.stopped_early,
        threads=run.threads,
        config=dataclasses.asdict(cfg),
    )
    return run.finish(result, record)


__all__ = ["RECIPES", "MusicModule", "MusicTrainConfig", "collate", "recipe", "train"]
