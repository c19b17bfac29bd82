"""Training: tokenizers on the training split, teacher forcing with label-smoothed cross-entropy, through the
shared toolkit (:func:`grukit.train.fit`: run folder, best-on-validation ``model.safetensors``, ``last.ckpt``
every epoch for ``--resume``).

An "epoch" can be shortened to ``steps_per_epoch`` batches (a fresh shuffle each epoch), so that a long CPU
run is checkpointed and validated often and can continue with ``--resume`` in a later session. Where the run
folder is gone, ``--init-from MODEL`` starts a new run from a model file's weights and tokenizers (a fresh
optimizer, so not bit-identical to an uninterrupted run).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from ...errors import UserInputError
from ...train import Plateau, TaskModule, epoch_seed
from . import data as D
from .model import Translator

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ...train.recipe_run import TrainOptions

TASK = "translate"
TOKENIZER_FILE = "tokenizers.json"
#: Command-line spelling of the fields whose flag is not ``--field-name`` (for messages).
FLAGS = {"src_vocab": "--vocab", "tgt_vocab": "--vocab"}


@dataclasses.dataclass
class TrainConfig:
    """Options of ``grukit translate train`` (recorded in the run's config.json)."""

    epochs: int = 30
    seed: int = 0
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    src_vocab: int = 8000
    tgt_vocab: int = 8000
    emb_dim: int = 256
    enc_hidden: int = 256
    dec_hidden: int = 512
    dropout: float = 0.2
    max_len: int = 32
    steps_per_epoch: int | None = 500
    limit_train_pairs: int | None = None
    limit_valid_pairs: int | None = 2000
    bf16: bool = True
    lr_patience: int | None = 0
    init_from: str | None = None


class TranslateModule(TaskModule):
    """Label-smoothed cross-entropy under teacher forcing; logs token accuracy too. AdamW; with
    ``lr_patience`` the LR is halved when the validation loss has not improved for that many epochs
    (ReduceLROnPlateau), with None it stays constant."""

    def __init__(
        self,
        model: Translator,
        lr: float,
        weight_decay: float = 0.0,
        label_smoothing: float = 0.1,
        bf16: bool = False,
        lr_patience: int | None = 0,
    ) -> None:
        plateau = None if lr_patience is None else Plateau("val_loss", "min", 0.5, lr_patience)
        super().__init__(model, lr=lr, weight_decay=weight_decay, plateau=plateau)
        self.label_smoothing = float(label_smoothing)
        self.bf16 = bool(bf16)

    def step(self, batch: dict, stage: str) -> dict:
        m: Translator = self.model
        mem, h0 = m.encode(batch["src"], batch["src_len"])
        dec, _ = m.decoder(m.drop(m.tgt_emb(batch["tgt_in"])), h0)  # (B, T, Hd)
        with torch.autocast(
            "cpu", dtype=torch.bfloat16, enabled=self.bf16 and dec.device.type == "cpu"
        ):
            logits, _ = m.attend(dec, mem)  # (B, T, V)
        logits = logits.float()
        target = batch["tgt_out"]
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            target.reshape(-1),
            ignore_index=D.PAD,
            label_smoothing=self.label_smoothing if stage == "train" else 0.0,
        )
        real = target != D.PAD
        acc = ((logits.argmax(-1) == target) & real).sum() / real.sum().clamp(min=1)
        return {"loss": loss, "acc": acc}


class SamplerSeed(Callback):
    """Give the training batch sampler a fresh generator seeded from (seed, epoch) at each epoch start, as
    the toolkit does for RandomSampler, so a resumed run draws the same batches as an uninterrupted one."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        dl = trainer.train_dataloader
        sampler = getattr(dl, "batch_sampler", None)
        if isinstance(sampler, D.BucketBatchSampler):
            sampler.generator = torch.Generator().manual_seed(
                epoch_seed(self.seed, trainer.current_epoch) + 3
            )


def prepare_tokenizers(train_pairs, cfg: TrainConfig, run_path: Path | None = None):
    """Train both tokenizers on the training pairs, or reuse ``tokenizers.json`` of a run being resumed."""
    saved = run_path / TOKENIZER_FILE if run_path is not None else None
    if saved is not None and saved.is_file():
        import json

        return D.tokenizers_from_extra(json.loads(saved.read_text()), where=str(saved))
    src_tok = D.SubwordTokenizer.train([p[0] for p in train_pairs], cfg.src_vocab)
    tgt_tok = D.SubwordTokenizer.train([p[1] for p in train_pairs], cfg.tgt_vocab)
    return src_tok, tgt_tok


def train(
    cfg: TrainConfig,
    data_dir: str | os.PathLike | None = None,
    *,
    evaluate_beam: int | None = 5,
    splits: dict[str, list[tuple[str, str]]] | None = None,
    given: set[str] | None = None,
    **options: Unpack[TrainOptions],
):
    """Train a :class:`Translator`; returns the toolkit's FitResult. With ``evaluate_beam``, score the best
    model on the test split afterwards (metrics.json). ``splits`` replaces the data set (tests, own data).

    With ``resume`` the run continues to ``cfg.epochs`` with the options and tokenizers stored in its folder
    (:func:`grukit.train.resumed_config`: an option in ``given`` that conflicts is refused;
    ``--init-from`` only matters when a run starts). An ``output_dir`` that already holds files is refused
    unless ``overwrite``.
    ``options`` are the shared training options (:class:`grukit.train.recipe_run.TrainOptions`)."""
    from ...train import resolve_resume
    from ...train.recipe_run import RecipeRun

    run = RecipeRun.start(TASK, cfg, given=given, flags=FLAGS, **options)
    cfg = run.cfg
    resume_dir = None
    if run.resume is not None:
        resume_dir = resolve_resume(run.resume)[0]
        if given is not None and "eval_beam" not in given:  # stored options win unless given
            stored = json.loads((resume_dir / "config.json").read_text())
            evaluate_beam = stored.get("evaluate_beam", evaluate_beam)
    if splits is None:
        splits = D.load_splits(run.data_dir_of(D.DATASET, data_dir))
    train_pairs, valid_pairs = splits["train"], splits["valid"]
    if cfg.limit_train_pairs:
        train_pairs = train_pairs[: cfg.limit_train_pairs]
    if cfg.limit_valid_pairs:
        valid_pairs = valid_pairs[: cfg.limit_valid_pairs]

    init = None
    if cfg.init_from and run.resume is None:
        from .predict import load_bundle

        init = load_bundle(cfg.init_from)
        src_tok, tgt_tok = init.src_tok, init.tgt_tok
    else:
        src_tok, tgt_tok = prepare_tokenizers(
            splits["train"] if not cfg.limit_train_pairs else train_pairs, cfg, resume_dir
        )
    extra = D.tokenizers_to_extra(src_tok, tgt_tok)
    train_ds = D.encode_pairs(train_pairs, src_tok, tgt_tok, max_len=cfg.max_len)
    valid_ds = D.encode_pairs(valid_pairs, src_tok, tgt_tok, max_len=cfg.max_len)
    if len(train_ds) == 0:
        raise UserInputError("no training pairs left after the length filter; raise --max-len")
    train_dl = DataLoader(
        train_ds,
        batch_sampler=D.BucketBatchSampler(train_ds.lengths(), cfg.batch_size),
        collate_fn=D.collate,
    )
    valid_dl = DataLoader(
        valid_ds,
        batch_sampler=D.BucketBatchSampler(valid_ds.lengths(), 256, shuffle=False),
        collate_fn=D.collate,
    )
    if init is not None:  # the --init-from model's shape (its fit was checked when it trained)
        model = run.build(
            lambda: Translator.from_config(
                dataclasses.replace(init.model.config, dropout=cfg.dropout)
            ),
            "--init-from",
        )
        model.load_state_dict(init.model.state_dict())
    else:
        model = run.build(
            lambda: Translator(
                src_tok.vocab_size,
                tgt_tok.vocab_size,
                cfg.emb_dim,
                cfg.enc_hidden,
                cfg.dec_hidden,
                cfg.dropout,
            ),
            f"--enc-hidden {cfg.enc_hidden} --dec-hidden {cfg.dec_hidden}",
        )
    module = TranslateModule(
        model,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        label_smoothing=cfg.label_smoothing,
        bf16=cfg.bf16,
        lr_patience=cfg.lr_patience,
    )
    steps = (
        cfg.steps_per_epoch if cfg.steps_per_epoch and cfg.steps_per_epoch < len(train_dl) else None
    )
    record = run.run_config() | {
        "evaluate_beam": evaluate_beam,
        "train_pairs": len(train_ds),
        "valid_pairs": len(valid_ds),
        "src_vocab_actual": src_tok.vocab_size,
        "tgt_vocab_actual": tgt_tok.vocab_size,
        "batches_per_full_pass": len(train_dl),
    }
    result = run.fit(
        module,
        train_dl,
        valid_dl,
        accelerator="cpu",
        gradient_clip=1.0,
        monitor="val_loss",
        mode="min",
        limit_train_batches=steps,
        save_extra=extra,
        config=record,
        json_files={TOKENIZER_FILE: extra},
        callbacks=[SamplerSeed(cfg.seed)],
    )
    metrics_record = None
    if evaluate_beam:
        from .evaluate import evaluate
        from .predict import Bundle

        t0 = time.perf_counter()
        bundle = Bundle(result.best_model(), src_tok, tgt_tok, result.run.model_path)
        metrics = evaluate(bundle, splits["test"], beam_size=evaluate_beam)
        elapsed = result.history[-1].get("time_s") if result.history else result.wall_time_s
        metrics_record = dict(
            task=TASK,
            dataset=D.DATASET,
            split="test",
            model=metrics["model"],
            seed=cfg.seed,
            wall_time_s=elapsed,
            eval_time_s=round(time.perf_counter() - t0, 1),
            subsets=metrics["subsets"],
            decoding=metrics["decoding"],
        )
    run.finish(result, metrics_record)
    return result
