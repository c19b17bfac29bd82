"""Training through the shared toolkit (``grukit.train.fit``): features once in memory, length-bucketed
padded batches, cross-entropy on the last state, best-on-validation accuracy saved as model.safetensors.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from . import data as D
from .model import DigitRecognizer, DigitsConfig


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


def collate(batch: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor, Tensor]:
    """→ x (B, T_max, F) zero-padded, lengths (B,), y (B,)."""
    xs, ys = zip(*batch)
    lengths = torch.tensor([len(x) for x in xs], dtype=torch.long)
    x = torch.nn.utils.rnn.pad_sequence(list(xs), batch_first=True)
    return x, lengths, torch.tensor(ys, dtype=torch.long)


class BucketSampler(Sampler[list[int]]):
    """Batches of similar length (less padding): shuffle (torch's global RNG, so the toolkit's per-epoch
    seeding makes it reproducible), sort each pool of ``pool`` batches by length, cut into batches, shuffle
    the batches. ``shuffle=False`` gives length-sorted batches in a fixed order. Lazy like RandomSampler: the
    order is drawn at the first batch, after the toolkit has re-seeded the epoch (exact resume)."""

    def __init__(
        self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, pool: int = 8
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size, self.shuffle, self.pool = int(batch_size), shuffle, int(pool)

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n, bs = len(self.lengths), self.batch_size
        order = torch.randperm(n).tolist() if self.shuffle else list(range(n))
        span = bs * self.pool if self.shuffle else n
        batches = []
        for s in range(0, n, span):
            chunk = sorted(order[s : s + span], key=lambda i: self.lengths[i])
            batches += [chunk[i : i + bs] for i in range(0, len(chunk), bs)]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches)).tolist()]
        yield from batches


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


def _task_module_class():
    from grukit.train import TaskModule

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

    return DigitsModule


@torch.no_grad()
def predict_logits(
    model: DigitRecognizer, features: Sequence[np.ndarray], batch_size: int = 128
) -> np.ndarray:
    """Logits (N, n_classes) of normalized feature arrays, in input order."""
    model.eval()
    out = np.zeros((len(features), model.config.n_classes), dtype=np.float32)
    dl: DataLoader[int] = DataLoader(
        list(range(len(features))),  # type: ignore[arg-type]  # a list is a map-style dataset
        batch_sampler=BucketSampler([len(f) for f in features], batch_size, shuffle=False),
        collate_fn=lambda idx: idx,
    )
    for idx in dl:
        x = torch.nn.utils.rnn.pad_sequence(
            [torch.from_numpy(features[i]) for i in idx], batch_first=True
        )
        lengths = torch.tensor([len(features[i]) for i in idx])
        out[idx] = model(x, lengths).numpy()
    return out


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
    devices="auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    progress: bool = True,
    run_config: dict | None = None,
    limit_train_batches=None,
    plot: bool = True,
):
    """Build the model from ``cfg`` (seeded), train with :func:`grukit.train.fit` (best ``val_acc``), return
    the FitResult."""
    from grukit.train import fit, seed_everything

    seed_everything(seed)
    model = DigitRecognizer.from_config(cfg)
    module = _task_module_class()(
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
        task="digits",
        epochs=epochs,
        seed=seed,
        monitor="val_acc",
        mode="max",
        patience=patience,
        output_dir=output_dir,
        resume=resume,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        accelerator="cpu",
        progress=progress,
        config=run_config,
        limit_train_batches=limit_train_batches,
        plot=plot,
    )


def accuracy(logits: np.ndarray, labels: Sequence[int]) -> float:
    return float((logits.argmax(-1) == np.asarray(labels)).mean())


def timed(fn, *args, **kwargs):
    """(result, wall seconds, process CPU seconds) of ``fn(*args, **kwargs)``."""
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w, time.process_time() - c
