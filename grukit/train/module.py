"""``TaskModule``: the LightningModule base every recipe subclasses.

A recipe supplies the grukit model (``self.model``, the thing saved as ``model.safetensors``) and a ``step``
that returns the loss (or a dict with ``"loss"`` and other metrics) for a batch; the base logs
``train_loss``/``val_loss`` (and ``val_<name>`` for extra metrics), and builds the optimizer (AdamW or
Adam) with, on request, a :class:`Plateau` learning-rate schedule (ReduceLROnPlateau) — the one scheduler
set-up every recipe shares.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor, nn

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}


@dataclasses.dataclass(frozen=True)
class Plateau:
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for ``patience`` epochs
    (``torch.optim.lr_scheduler.ReduceLROnPlateau``, its state carried in ``last.ckpt``).

    Example:
        >>> Plateau(monitor="val_acc", mode="max")
        Plateau(monitor='val_acc', mode='max', factor=0.5, patience=0)
    """

    monitor: str = "val_loss"
    mode: str = "min"
    factor: float = 0.5
    patience: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"Plateau mode must be 'min' or 'max', got {self.mode!r}")
        if not 0.0 < self.factor < 1.0:
            raise ValueError(f"Plateau factor must be in (0, 1), got {self.factor}")
        if self.patience < 0:
            raise ValueError(f"Plateau patience must be >= 0, got {self.patience}")


class TaskModule(L.LightningModule):
    """Base LightningModule of every recipe: holds the grukit model to train and save; override :meth:`step`.

    ``step(batch, stage)`` returns a scalar loss tensor, or a dict ``{"loss": tensor, "mae": tensor, ...}``;
    ``stage`` is ``"train"``, ``"val"`` or ``"test"``. Each value is logged per epoch as
    ``f"{stage}_{key}"`` (``train_loss``, ``val_loss``, ``val_mae``, ...).

    Args:
        model: the grukit model (saved by :func:`fit` as ``model.safetensors``), kept as ``self.model``.
        lr: the optimizer's learning rate.
        weight_decay: the optimizer's weight decay (AdamW's decoupled decay, or Adam's L2 term).
        optimizer: ``"adamw"`` (default) or ``"adam"``.
        plateau: a :class:`Plateau` adds ReduceLROnPlateau — the one learning-rate schedule the recipes
            share — stepped by Lightning once per epoch on the monitored metric or, for a module with
            manual optimization, by this base class at the end of each validation epoch.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: an unknown ``optimizer``.
        UserInputError: a learning rate or weight decay the optimizer cannot apply to the model's weights
            (negative, not finite, or so large that Adam's first step overflows their dtype; see
            :func:`check_optimizer_scalars`).

    Examples:
        >>> import torch, grukit
        >>> from grukit.train import TaskModule
        >>> class LastStep(TaskModule):
        ...     def step(self, batch, stage):
        ...         x, y = batch  # x (T, B, I), y (B, H)
        ...         out, h_n = self.model(x)  # out (T, B, H)
        ...         return torch.nn.functional.mse_loss(out[-1], y)
        >>> module = LastStep(grukit.GRU(3, 4), lr=1e-2, optimizer="adam", plateau=Plateau())
        >>> module.step((torch.randn(5, 2, 3), torch.zeros(2, 4)), "train").shape
        torch.Size([])
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        *,
        optimizer: str = "adamw",
        plateau: Plateau | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"TaskModule expected an nn.Module as model, got {type(model).__name__}"
            )
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        check_optimizer_scalars(model, float(lr), float(weight_decay), optimizer)
        self.model = model
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.optimizer_name = optimizer
        self.plateau = plateau

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def step(self, batch: Any, stage: str) -> Tensor | dict[str, Tensor]:
        """The loss of one batch (override this).

        Args:
            batch: one batch from the DataLoader.
            stage: ``"train"``, ``"val"`` or ``"test"``.

        Returns:
            A scalar loss tensor, or a dict holding ``"loss"`` and other scalar metrics.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement step(batch, stage)")

    def _run(self, batch: Any, stage: str) -> Tensor:
        out = self.step(batch, stage)
        metrics = out if isinstance(out, dict) else {"loss": out}
        if "loss" not in metrics:
            raise KeyError(
                f"{type(self).__name__}.step must return a loss tensor or a dict with 'loss', got keys "
                f"{sorted(metrics)}"
            )
        bs = _batch_size(batch)
        sync = self._trainer is not None and self.trainer.world_size > 1  # reduced once per epoch
        for k, v in metrics.items():
            self.log(
                f"{stage}_{k}",
                v.detach() if isinstance(v, Tensor) else v,
                on_step=False,
                on_epoch=True,
                prog_bar=(k == "loss"),
                batch_size=bs,
                sync_dist=sync,
            )
        return metrics["loss"]

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._run(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._run(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._run(batch, "test")

    def configure_optimizers(self) -> Any:
        opt = OPTIMIZERS[self.optimizer_name](
            self.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        if self.plateau is None:
            return opt
        p = self.plateau
        mode: Literal["min", "max"] = "max" if p.mode == "max" else "min"
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=mode, factor=p.factor, patience=p.patience
        )
        if not self.automatic_optimization:  # stepped in on_validation_epoch_end
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched}}
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "monitor": p.monitor, "interval": "epoch"},
        }

    def on_validation_epoch_end(self) -> None:
        if self.automatic_optimization or self.plateau is None or self.trainer.sanity_checking:
            return
        value = self.trainer.callback_metrics.get(self.plateau.monitor)
        sched = self.lr_schedulers()
        if value is not None and isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(float(value))


#: The first moment's decay of torch's Adam/AdamW defaults, which :class:`TaskModule` uses.
_BETA1 = 0.9


def check_optimizer_scalars(
    model: nn.Module, lr: float, weight_decay: float = 0.0, optimizer: str = "adamw"
) -> None:
    """Refuse a learning rate or weight decay that Adam/AdamW cannot apply to ``model``'s weights, before any
    training: one that is negative or not finite, or one whose first update does not fit the weights' dtype
    (torch then stops with "value cannot be converted to type float without overflow").

    Adam's first step moves each weight by ``lr / (1 - beta1)`` = 10·lr, and Adam (not AdamW) adds
    ``weight_decay·w`` to the gradient: torch refuses either factor when it does not fit the weights' dtype.
    A value that fits but is still absurd (``--lr 1e37``, or AdamW's decay ``lr·weight_decay`` > 1) trains
    into a non-finite loss, which :func:`grukit.train.fit` reports as :class:`grukit.train.TrainingDiverged`.

    Raises:
        UserInputError: naming the value, the step it makes and the largest value allowed.

    Example:
        >>> import grukit
        >>> from grukit.train.module import check_optimizer_scalars
        >>> check_optimizer_scalars(grukit.GRU(2, 3), 1e-3)  # fine: returns None
        >>> check_optimizer_scalars(grukit.GRU(2, 3), 1e38)
        Traceback (most recent call last):
        ...
        grukit.errors.UserInputError: --lr 1e+38 is too large: Adam's first step lr / (1 - 0.9) = 1e+39 does not fit float32 weights (at most 3.403e+38); use --lr below 3.403e+37
    """
    from ..errors import UserInputError

    for flag, value in (("--lr", lr), ("--weight-decay", weight_decay)):
        if not (math.isfinite(value) and value >= 0):
            raise UserInputError(f"{flag} must be a finite number >= 0, got {value:g}")
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if not dtypes:
        return
    dtype = min(dtypes, key=lambda d: torch.finfo(d).max)
    largest = float(torch.finfo(dtype).max)
    kind = str(dtype).removeprefix("torch.")
    first_step = lr / (1 - _BETA1)
    if first_step > largest:
        raise UserInputError(
            f"--lr {lr:g} is too large: Adam's first step lr / (1 - {_BETA1}) = {first_step:g} does not "
            f"fit {kind} weights (at most {largest:.4g}); use --lr below {largest * (1 - _BETA1):.4g}"
        )
    if optimizer == "adam" and weight_decay > largest:  # Adam adds weight_decay·w to the gradient
        raise UserInputError(
            f"--weight-decay {weight_decay:g} is too large: Adam's L2 term does not fit {kind} weights "
            f"(at most {largest:.4g})"
        )


def _batch_size(batch: Any) -> int | None:
    if isinstance(batch, Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_size(batch[0])
    if isinstance(batch, dict) and batch:
        return _batch_size(next(iter(batch.values())))
    return None
