"""Training through ``grukit.train.fit``: cross-entropy on the phrase-level train split, model selection on
dev accuracy (best ``model.safetensors``), final numbers on the labelled test split.

Adam; the learning rate halves when dev accuracy stalls; early stopping on dev accuracy.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor

from ...train import Plateau, TaskModule
from .data import Encoder, SentimentDataset, build_vocab, load_split
from .model import SentimentGRU

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ...train.recipe_run import TrainOptions

TASK = "sentiment"
DATASET = "sst2"


@dataclasses.dataclass
class SentimentTrainConfig:
    """Every option of a sentiment training run (saved as the run's config.json)."""

    embed_dim: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.5
    embed_dropout: float = 0.3
    min_freq: int = 1
    lr: float = 2e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    clip: float = 5.0
    epochs: int = 8
    patience: int | None = 3
    lr_patience: int = 0
    seed: int = 0
    max_train: int | None = None  # smoke runs: only the first N training phrases
    backend: str = "auto"


#: Command-line spelling of the fields whose flag is not ``--field-name`` (for messages).
FLAGS = {"hidden_size": "--hidden", "num_layers": "--layers"}
#: ``grukit sentiment train`` parameter → config field, where they differ.
CLI_FIELDS = {"hidden": "hidden_size", "layers": "num_layers"}


class SentimentModule(TaskModule):
    """LightningModule for :class:`SentimentGRU`; logs loss and accuracy."""

    def __init__(
        self, model: SentimentGRU, lr: float = 2e-3, weight_decay: float = 0.0, lr_patience: int = 0
    ) -> None:
        super().__init__(
            model,
            lr=lr,
            weight_decay=weight_decay,
            optimizer="adam",
            plateau=Plateau("val_acc", "max", factor=0.5, patience=lr_patience),
        )

    def step(self, batch: tuple[Tensor, Tensor, Tensor], stage: str) -> dict[str, Tensor]:
        ids, lengths, y = batch
        logits = self.model(ids, lengths)
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(-1) == y).float().mean()}


def train(
    cfg: SentimentTrainConfig,
    data_dir: str | Path | None = None,
    *,
    baselines: bool = True,
    given: set[str] | None = None,
    **options: Unpack[TrainOptions],
) -> dict[str, Any]:
    """Train, then score the best-on-dev model on dev and test; write the run folder's metrics.json.

    With ``resume`` the run continues to ``cfg.epochs`` with the options stored in its config.json
    (:func:`grukit.train.resumed_config`: an option in ``given`` that conflicts is refused). An
    ``output_dir`` that already holds files is refused unless ``overwrite``.
    ``options`` are the shared training options (:class:`grukit.train.recipe_run.TrainOptions`)."""
    from ...train.recipe_run import RecipeRun
    from .data import NAME
    from .evaluate import accuracy, make_loader
    from .evaluate import baselines as run_baselines

    run = RecipeRun.start(TASK, cfg, given=given, flags=FLAGS, **options)
    cfg = run.cfg
    data_dir = run.data_dir_of(NAME, data_dir)
    tr_texts, tr_labels = load_split("train", data_dir)
    dev_texts, dev_labels = load_split("dev", data_dir)
    test_texts, test_labels = load_split("test", data_dir)
    if cfg.max_train:
        tr_texts, tr_labels = tr_texts[: cfg.max_train], tr_labels[: cfg.max_train]
    vocab = build_vocab(tr_texts, min_freq=cfg.min_freq)  # train only
    enc = Encoder(vocab)
    model = run.build(
        lambda: SentimentGRU(
            vocab,
            cfg.embed_dim,
            cfg.hidden_size,
            cfg.num_layers,
            cfg.dropout,
            cfg.embed_dropout,
            cfg.backend,
        ),
        f"--hidden {cfg.hidden_size} --layers {cfg.num_layers}",
    )
    module = SentimentModule(
        model, lr=cfg.lr, weight_decay=cfg.weight_decay, lr_patience=cfg.lr_patience
    )
    train_dl = make_loader(
        SentimentDataset(tr_texts, tr_labels, enc), cfg.batch_size, shuffle=True, seed=cfg.seed
    )
    dev_dl = make_loader(SentimentDataset(dev_texts, dev_labels, enc), 256, shuffle=False)
    t0 = time.perf_counter()
    result = run.fit(
        module,
        train_dl,
        dev_dl,
        gradient_clip=cfg.clip,
        monitor="val_acc",
        mode="max",
        patience=cfg.patience,
        save_extra={"dataset": DATASET},
    )
    best = result.best_model()
    test = accuracy(best, test_texts, test_labels)
    dev = accuracy(best, dev_texts, dev_labels)
    record = dict(
        task=TASK,
        dataset=DATASET,
        split="test",
        model={"accuracy": test["accuracy"], "dev_accuracy": dev["accuracy"], "n": test["n"]},
        baselines=run_baselines(tr_texts, tr_labels, test_texts, test_labels)
        if baselines
        else None,
        seed=cfg.seed,
        wall_time_s=time.perf_counter() - t0,
        training_wall_time_s=result.history[-1]["time_s"] if result.history else None,
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        stopped_early=result.stopped_early,
        threads=run.threads,
        vocab_size=len(vocab),
        train_phrases=len(tr_texts),
        parameters=sum(p.numel() for p in best.parameters()),
        config=dataclasses.asdict(cfg),
    )
    return run.finish(result, record)


__all__ = ["SentimentModule", "SentimentTrainConfig", "train"]
