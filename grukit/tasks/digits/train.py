"""Training through the shared toolkit (``grukit.train.fit``): features once in memory, length-bucketed
padded batches, cross-entropy on the last state, best-on-validation accuracy saved as model.safetensors.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from ...train import TaskModule
from . import data as D
from .data import BucketSampler, collate
from .model import DigitRecognizer, DigitsConfig

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ...train.recipe_run import TrainOptions

TASK = "digits"


@dataclass
class DigitsTrainConfig:
    """Every option of a digits training run (saved as the run's config.json); the field names are the
    ``grukit digits train`` options."""

    epochs: int = 30
    seed: int = 0
    unidirectional: bool = False  # the streaming model (default: bidirectional, offline)
    normalization: str = "running"
    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.3
    pooling: str = "mean"
    n_mels: int = 40
    deltas: bool = True
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    mask_bands: int = 8
    mask_frames: int = 10
    stretch: float = 0.2
    shift: int = 2
    patience: int | None = None  # early stopping on val_acc; None = off
    speaker: str | None = None  # leave-one-speaker-out fold: test on this speaker
    subset: int | None = None  # smoke runs: N recordings per split

    def model_config(self) -> DigitsConfig:
        """The model's :class:`DigitsConfig` (feature statistics are filled in by :func:`prepare`)."""
        return DigitsConfig(
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=not self.unidirectional,
            dropout=self.dropout,
            n_mels=self.n_mels,
            deltas=self.deltas,
            pooling=self.pooling,
            normalization=self.normalization,
        )


@dataclass
class Prepared:
    """Normalized features and labels of each split, plus the statistics the model config needs."""

    features: dict[str, list[np.ndarray]]
    labels: dict[str, list[int]]
    feature_mean: list[float] | None
    feature_var: list[float] | None


def normalize_all(raw: Sequence[np.ndarray], cfg: DigitsConfig) -> list[np.ndarray]:
    """Raw features → normalized as ``cfg.normalization`` says."""
    if cfg.normalization == "utterance":
        return [D.utterance_normalize(x) for x in raw]
    return [
        D.running_normalize(x, cfg.feature_mean, cfg.feature_var, cfg.prior_frames) for x in raw
    ]


def prepare(
    raw: dict[str, list[np.ndarray]], labels: dict[str, list[int]], cfg: DigitsConfig
) -> tuple[Prepared, DigitsConfig]:
    """Normalize each split; for running normalization the prior statistics come from ``raw["train"]``."""
    if cfg.normalization == "running":
        mean, var = D.feature_stats(raw["train"])
        cfg = dataclasses.replace(cfg, feature_mean=mean, feature_var=var)
    feats = {k: normalize_all(v, cfg) for k, v in raw.items()}
    return Prepared(feats, labels, cfg.feature_mean, cfg.feature_var), cfg


def warp(x: Tensor, stretch: float, shift: int, n_mels: int, deltas: bool) -> Tensor:
    """Augmentation of one utterance's features x (T, F): tempo change by linear interpolation along time to
    round(T·(1 + u)), u ~ U(−stretch, stretch), and a shift of the mel axis by k ~ U{−shift..shift} channels
    (edge channels repeated; static and delta halves alike), a cheap stand-in for vocal-tract-length change.
    Uses torch's global RNG."""
    T = x.shape[0]
    if stretch > 0 and T > 1:
        u = float(torch.empty(()).uniform_(-stretch, stretch))
        new_t = max(2, int(round(T * (1.0 + u))))
        x = F.interpolate(x.T[None], size=new_t, mode="linear", align_corners=True)[
            0
        ].T.contiguous()
    if shift > 0:
        k = int(torch.randint(-shift, shift + 1, ()))
        if k:
            parts = [x[:, :n_mels], x[:, n_mels:]] if deltas else [x]
            idx = (torch.arange(n_mels) - k).clamp(0, n_mels - 1)
            x = torch.cat([p[:, idx] for p in parts], dim=1)
    return x


class FeatureDataset(Dataset):
    """(features (T, F) float32 tensor, label) pairs, optionally augmented by :func:`warp`."""

    def __init__(
        self,
        features: Sequence[np.ndarray],
        labels: Sequence[int],
        stretch: float = 0.0,
        shift: int = 0,
        n_mels: int = 0,
        deltas: bool = False,
    ) -> None:
        if len(features) != len(labels):
            raise ValueError(f"got {len(features)} feature arrays but {len(labels)} labels")
        self.x = [torch.from_numpy(np.ascontiguousarray(f)) for f in features]
        self.y = [int(v) for v in labels]
        self.stretch, self.shift, self.n_mels, self.deltas = (
            float(stretch),
            int(shift),
            int(n_mels),
            bool(deltas),
        )

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        if self.stretch > 0 or self.shift > 0:
            return warp(self.x[i], self.stretch, self.shift, self.n_mels, self.deltas), self.y[i]
        return self.x[i], self.y[i]


def loader(
    features: Sequence[np.ndarray], labels: Sequence[int], batch_size: int, shuffle: bool, **augment
) -> DataLoader:
    ds = FeatureDataset(features, labels, **augment)
    return DataLoader(
        ds,
        batch_sampler=BucketSampler([len(f) for f in features], batch_size, shuffle),
        collate_fn=collate,
    )


def spec_mask(
    x: Tensor, lengths: Tensor, n_mels: int, deltas: bool, max_bands: int, max_frames: int
) -> Tensor:
    """SpecAugment-style masking for training: one band of up to ``max_bands`` mel channels (and its deltas)
    and one span of up to ``max_frames`` frames set to 0 (the normalized mean) per sequence."""
    if max_bands <= 0 and max_frames <= 0:
        return x
    B, T, _ = x.shape
    x = x.clone()
    for b in range(B):
        if max_bands > 0:
            w = int(torch.randint(0, max_bands + 1, ()).item())
            f0 = int(torch.randint(0, max(1, n_mels - w + 1), ()).item())
            x[b, :, f0 : f0 + w] = 0
            if deltas:
                x[b, :, n_mels + f0 : n_mels + f0 + w] = 0
        if max_frames > 0:
            L = int(lengths[b])
            w = int(torch.randint(0, min(max_frames, L // 4) + 1, ()).item())
            t0 = int(torch.randint(0, max(1, L - w + 1), ()).item())
            x[b, t0 : t0 + w] = 0
    return x


class DigitsModule(TaskModule):
    """Cross-entropy on the logits of the last state; logs accuracy."""

    def __init__(
        self,
        model: DigitRecognizer,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        mask_bands: int = 0,
        mask_frames: int = 0,
        epochs: int | None = None,
    ) -> None:
        super().__init__(model, lr=lr, weight_decay=weight_decay)
        self.mask_bands, self.mask_frames = int(mask_bands), int(mask_frames)
        self.epochs = epochs

    def lr_at(self, epoch: int) -> float:
        """Cosine decay from lr to 0.02·lr over ``epochs`` (constant lr without ``epochs``)."""
        if not self.epochs:
            return self.lr
        e = min(epoch, self.epochs)
        return self.lr * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * e / self.epochs)))

    def on_train_epoch_start(self) -> None:
        # set from the epoch number alone (no scheduler state), so a run resumed with another --epochs
        # continues on the new schedule from where it stopped
        for opt in self.trainer.optimizers:
            for g in opt.param_groups:
                g["lr"] = self.lr_at(self.current_epoch)

    def step(self, batch, stage: str):
        x, lengths, y = batch
        if stage == "train":
            c = self.model.config
            x = spec_mask(x, lengths, c.n_mels, c.deltas, self.mask_bands, self.mask_frames)
        logits = self.model(x, lengths)
        loss = F.cross_entropy(logits, y)
        return {"loss": loss, "acc": (logits.argmax(-1) == y).float().mean()}


def train_model(
    prepared: Prepared,
    cfg: DigitsConfig,
    *,
    epochs: int,
    seed: int,
    batch_size: int = 32,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    mask_bands: int = 0,
    mask_frames: int = 0,
    stretch: float = 0.0,
    shift: int = 0,
    patience: int | None = None,
    output_dir=None,
    resume=None,
    overwrite: bool = False,
    devices="auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    progress: bool = True,
    run_config: dict | None = None,
    limit_train_batches=None,
    plot: bool = True,
    inputs: dict | None = None,
    finish: bool = True,
):
    """Build the model from ``cfg`` (seeded; refused first if it cannot fit in memory), train with
    :func:`grukit.train.fit` (best ``val_acc``; ``inputs`` and ``finish`` are fit's), return the FitResult."""
    from grukit.train import fit, seed_everything
    from grukit.train.run import check_model_fits

    check_model_fits(
        lambda: DigitRecognizer.from_config(cfg),
        f"--hidden-size {cfg.hidden_size} --num-layers {cfg.num_layers}",
    )
    seed_everything(seed)
    model = DigitRecognizer.from_config(cfg)
    module = DigitsModule(
        model,
        lr=lr,
        weight_decay=weight_decay,
        mask_bands=mask_bands,
        mask_frames=mask_frames,
        epochs=epochs,
    )
    train_dl = loader(
        prepared.features["train"],
        prepared.labels["train"],
        batch_size,
        shuffle=True,
        stretch=stretch,
        shift=shift,
        n_mels=cfg.n_mels,
        deltas=cfg.deltas,
    )
    val_dl = loader(prepared.features["val"], prepared.labels["val"], 128, shuffle=False)
    return fit(
        module,
        train_dl,
        val_dl,
        task=TASK,
        epochs=epochs,
        seed=seed,
        monitor="val_acc",
        mode="max",
        patience=patience,
        output_dir=output_dir,
        resume=resume,
        overwrite=overwrite,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        accelerator="cpu",
        progress=progress,
        config=run_config,
        inputs=inputs,
        finish=finish,
        limit_train_batches=limit_train_batches,
        plot=plot,
    )


def timed(fn, *args, **kwargs):
    """(result, wall seconds, process CPU seconds) of ``fn(*args, **kwargs)``."""
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w, time.process_time() - c


def _subset(recs: list, n: int | None) -> list:
    """``n`` recordings spread evenly over ``recs`` (all if n is None)."""
    if n is None or n >= len(recs):
        return list(recs)
    step = len(recs) / n
    return [recs[int(i * step)] for i in range(n)]


def train(
    cfg: DigitsTrainConfig,
    data_dir=None,
    *,
    given: set[str] | None = None,
    **options: Unpack[TrainOptions],
) -> dict:
    """Featurize the split, train (best ``val_acc``), score the best model on val and test, write the run
    folder's metrics.json. Returns the metrics record plus ``"run"`` (the folder).

    With ``resume`` the run continues to ``cfg.epochs`` with the options stored in its config.json
    (:func:`grukit.train.resumed_config`: an option in ``given`` that conflicts is refused). An
    ``output_dir`` that already holds files is refused unless ``overwrite``.

    ``options`` are the shared training options (:class:`grukit.train.recipe_run.TrainOptions`).
    """
    from ...errors import UserInputError
    from ...train.recipe_run import RecipeRun
    from .evaluate import predict_logits, summarize
    from .model import NORMALIZATIONS, POOLINGS

    run = RecipeRun.start(TASK, cfg, given=given, **options)
    cfg = run.cfg
    if cfg.pooling not in POOLINGS:
        raise UserInputError(f"--pooling must be one of {', '.join(POOLINGS)}, got {cfg.pooling!r}")
    if cfg.normalization not in NORMALIZATIONS:
        raise UserInputError(
            f"--normalization must be one of {', '.join(NORMALIZATIONS)}, got {cfg.normalization!r}"
        )
    root = run.data_dir_of(D.DATASET, data_dir)
    recs = D.list_recordings(root)
    parts = D.speaker_split(recs, cfg.speaker) if cfg.speaker else D.official_split(recs)
    parts = {k: _subset(v, cfg.subset) for k, v in parts.items()}
    model_cfg = cfg.model_config()
    spec = D.FeatureSpec(
        model_cfg.sample_rate,
        model_cfg.n_fft,
        model_cfg.hop_length,
        model_cfg.n_mels,
        model_cfg.deltas,
    )
    (raw, t_feat, _) = timed(lambda: {k: D.load_raw_features(v, spec) for k, v in parts.items()})
    labels = {k: [r.digit for r in v] for k, v in parts.items()}
    prepared, model_cfg = prepare(raw, labels, model_cfg)
    split = (
        f"leave out {cfg.speaker}" if cfg.speaker else "official (test 0-4, val 5-9, train 10-49)"
    )
    run_config = {
        **dataclasses.asdict(cfg),
        "model": {k: v for k, v in model_cfg.__dict__.items() if not k.startswith("feature_")},
        "threads": run.threads,
        "data_dir": str(root),
        "split": split,
    }
    result, wall, cpu = timed(
        train_model,
        prepared,
        model_cfg,
        epochs=cfg.epochs,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        mask_bands=cfg.mask_bands,
        mask_frames=cfg.mask_frames,
        stretch=cfg.stretch,
        shift=cfg.shift,
        patience=cfg.patience,
        **run.fit_options(),
        run_config=run_config,
        inputs={"--data-dir": root},
        finish=False,
    )
    model = result.best_model()
    scores = {}
    for name in ("val", "test"):
        scores[name] = summarize(
            predict_logits(model, prepared.features[name]),
            labels[name],
            [r.speaker for r in parts[name]],
        )
    record = dict(
        task=TASK,
        dataset="fsdd",
        split="test" if not cfg.speaker else f"test (speaker {cfg.speaker})",
        model={"accuracy": scores["test"]["accuracy"], "val_accuracy": scores["val"]["accuracy"]},
        seed=cfg.seed,
        wall_time_s=wall,
        cpu_time_s=round(cpu, 1),
        feature_time_s=round(t_feat, 1),
        threads=run.threads,
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        per_speaker=scores["test"]["per_speaker"],
        confusion=scores["test"]["confusion"],
    )
    return {**run.finish(result, record), "n_test": scores["test"]["n"]}
