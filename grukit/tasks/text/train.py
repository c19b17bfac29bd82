"""Training: truncated BPTT with the GRU state carried across batches, through ``grukit.train.fit``.

The training text is laid out as ``batch_size`` parallel streams (``data.StreamBatches``); batches come in
order, the module keeps each stream's final state (detached) and starts the next batch from it, so the
model learns dependencies longer than ``seq_len``. The state is reset at the start of every epoch (and of
every validation pass). With ``epoch_parts=K`` one pass over the training text is cut into K consecutive
Lightning epochs, so a slow CPU run validates, saves ``model.safetensors`` (best) and ``last.ckpt`` (for
``--resume``) K times per pass. Adam; the learning rate is multiplied by ``lr_factor`` whenever the
validation loss fails to improve (ReduceLROnPlateau, its state in ``last.ckpt``).

Single process only: the carried state assumes one process sees every stream's batches in order.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from ...errors import UserInputError
from ...train import Plateau, TaskModule
from .data import CharVocab, StreamBatches, load_text, split_text
from .model import CharLM

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ...train.recipe_run import TrainOptions

TASK = "text"
DATASET = "tinyshakespeare"


@dataclasses.dataclass
class TextTrainConfig:
    """Every option of a text training run (saved as the run's config.json)."""

    embed_dim: int = 64
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.2
    lr: float = 2e-3
    weight_decay: float = 0.0
    batch_size: int = 64  # parallel streams
    seq_len: int = 64  # truncated-BPTT window (characters)
    clip: float = 1.0  # global gradient-norm clip
    epochs: int = 40
    epoch_parts: int = 2  # Lightning epochs per pass over the training text
    lr_factor: float = 0.5
    lr_patience: int = 0
    patience: int | None = None  # early stopping (epochs without val improvement); None = off
    seed: int = 0
    val_streams: int = 16
    val_seq_len: int = 256
    eval_streams: int = 1  # the final valid score: 1 = every character given its whole prefix
    max_train_chars: int | None = None  # smoke runs: only the first N training characters
    max_valid_chars: int | None = None
    backend: str = "auto"
    init_from: str | None = (
        None  # start from this model file's weights (same architecture), fresh optimizer
    )


#: Command-line spelling of the fields whose flag is not ``--field-name`` (for messages).
FLAGS = {"hidden_size": "--hidden", "num_layers": "--layers"}
#: ``grukit text train`` parameter → config field, where they differ.
CLI_FIELDS = {"hidden": "hidden_size", "layers": "num_layers"}


class TextModule(TaskModule):
    """LightningModule for :class:`CharLM` with the GRU state carried from batch to batch."""

    def __init__(
        self,
        model: CharLM,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        lr_factor: float = 0.5,
        lr_patience: int = 0,
    ) -> None:
        super().__init__(
            model,
            lr=lr,
            weight_decay=weight_decay,
            optimizer="adam",
            plateau=Plateau("val_loss", "min", factor=lr_factor, patience=lr_patience),
        )
        self._state: dict[str, Tensor | None] = {"train": None, "val": None, "test": None}

    def on_train_epoch_start(self) -> None:
        self._state["train"] = None

    def on_validation_epoch_start(self) -> None:
        self._state["val"] = None

    def step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch  # (B, T) each
        h = self._state.get(stage)
        if h is not None and h.shape[1] != x.shape[0]:
            h = None
        logits, h_n = self.model(x, h)
        self._state[stage] = h_n.detach()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


class TextData(L.LightningDataModule):
    """Train batches of part ``epoch mod parts`` of the training pass; the whole validation text."""

    def __init__(self, train_ids: Tensor, valid_ids: Tensor, cfg: TextTrainConfig) -> None:
        super().__init__()
        self.train_ids, self.valid_ids, self.cfg = train_ids, valid_ids, cfg

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        part = epoch % self.cfg.epoch_parts
        ds = StreamBatches(
            self.train_ids, self.cfg.batch_size, self.cfg.seq_len, part, self.cfg.epoch_parts
        )
        return DataLoader(ds, batch_size=None, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        ds = StreamBatches(self.valid_ids, self.cfg.val_streams, self.cfg.val_seq_len)
        return DataLoader(ds, batch_size=None, shuffle=False)


def prepare(
    cfg: TextTrainConfig, data_dir: str | Path | None = None
) -> tuple[CharVocab, Tensor, Tensor]:
    """(vocabulary of the whole corpus, train ids, valid ids), sliced for smoke runs."""
    text = load_text(data_dir)
    vocab = CharVocab.from_text(text)  # 65 characters; the valid split has no character train lacks
    train_text, valid_text = split_text(text, "train"), split_text(text, "valid")
    if cfg.max_train_chars:
        train_text = train_text[: cfg.max_train_chars]
    if cfg.max_valid_chars:
        valid_text = valid_text[: cfg.max_valid_chars]
    return vocab, vocab.encode(train_text), vocab.encode(valid_text)


def init_weights(model: CharLM, checkpoint: str | Path) -> None:
    """Copy the weights of ``checkpoint`` (a run folder or model file of the same architecture) into ``model``."""
    from ... import serialization
    from ...train import resolve_checkpoint

    src = serialization.load(resolve_checkpoint(checkpoint))
    if not isinstance(src, CharLM) or src.config != dataclasses.replace(
        model.config, backend=src.config.backend
    ):
        raise UserInputError(
            f"--init-from {checkpoint}: expected a CharLM with config {model.config}, got "
            f"{getattr(src, 'config', type(src).__name__)}"
        )
    model.load_state_dict(src.state_dict())


def train(
    cfg: TextTrainConfig,
    data_dir: str | Path | None = None,
    *,
    given: set[str] | None = None,
    **options: Unpack[TrainOptions],
) -> dict[str, Any]:
    """Train a CharLM, score the best-on-validation model on the whole valid split, write the run folder.

    With ``resume`` (a run folder or its last.ckpt) the run continues to ``cfg.epochs`` with its own stored
    options (:func:`grukit.train.resumed_config`; ``given`` names the options the user set, and one that
    conflicts with the stored run is refused). An ``output_dir`` that already holds files is refused
    unless ``overwrite``.

    Returns the metrics record (also written to ``<run>/metrics.json``).

    ``options`` are the shared training options (:class:`grukit.train.recipe_run.TrainOptions`).
    """
    from ...train.recipe_run import RecipeRun
    from .data import NAME
    from .evaluate import score_ids, unigram_nats

    run = RecipeRun.start(TASK, cfg, given=given, flags=FLAGS, **options)
    cfg = run.cfg
    if cfg.epoch_parts < 1:
        raise UserInputError(f"--epoch-parts must be at least 1, got {cfg.epoch_parts}")
    vocab, train_ids, valid_ids = prepare(cfg, run.data_dir_of(NAME, data_dir))
    model = run.build(
        lambda: CharLM(
            vocab.chars, cfg.embed_dim, cfg.hidden_size, cfg.num_layers, cfg.dropout, cfg.backend
        ),
        f"--hidden {cfg.hidden_size} --layers {cfg.num_layers}",
    )
    if cfg.init_from and run.resume is None:
        init_weights(model, cfg.init_from)
    module = TextModule(
        model,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        lr_factor=cfg.lr_factor,
        lr_patience=cfg.lr_patience,
    )
    data = TextData(train_ids, valid_ids, cfg)
    t0 = time.perf_counter()
    result = run.fit(
        module,
        datamodule=data,
        gradient_clip=cfg.clip,
        monitor="val_loss",
        patience=cfg.patience,
        save_extra={"dataset": DATASET, "split": "first 90% train / last 10% valid"},
        trainer_kwargs={"reload_dataloaders_every_n_epochs": 1} if cfg.epoch_parts > 1 else None,
    )
    best = result.best_model()
    valid = score_ids(best, valid_ids, streams=cfg.eval_streams)
    history = result.history
    record = dict(
        task=TASK,
        dataset=DATASET,
        split="valid",
        model={
            **{k: valid[k] for k in ("nats_per_char", "bits_per_char", "perplexity")},
            "chars": valid["chars"],
        },
        baselines={"unigram": {"nats_per_char": unigram_nats(train_ids, valid_ids, len(vocab))}},
        seed=cfg.seed,
        wall_time_s=time.perf_counter() - t0,
        training_wall_time_s=history[-1]["time_s"] if history else None,
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        passes=result.epochs_run / cfg.epoch_parts,
        threads=run.threads,
        train_chars=int(train_ids.numel()),
        valid_chars=int(valid_ids.numel()),
        parameters=sum(p.numel() for p in best.parameters()),
        config=dataclasses.asdict(cfg),
    )
    return run.finish(result, record)


__all__ = ["TextData", "TextModule", "TextTrainConfig", "prepare", "train"]
