"""``TaskModule``: the LightningModule base every recipe subclasses.

A recipe supplies the grukit model (``self.model``, the thing saved as ``model.safetensors``) and a ``step``
that returns the loss (or a dict with ``"loss"`` and other metrics) for a batch; the base logs
``train_loss``/``val_loss`` (and ``val_<name>`` for extra metrics), and builds AdamW.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn


class TaskModule(L.LightningModule):
    """Base LightningModule of every recipe: holds the grukit model to train and save; override :meth:`step`.

    ``step(batch, stage)`` returns a scalar loss tensor, or a dict ``{"loss": tensor, "mae": tensor, ...}``;
    ``stage`` is ``"train"``, ``"val"`` or ``"test"``. Each value is logged per epoch as
    ``f"{stage}_{key}"`` (``train_loss``, ``val_loss``, ``val_mae``, ...). The optimizer is AdamW.

    Args:
        model: the grukit model (saved by :func:`fit` as ``model.safetensors``), kept as ``self.model``.
        lr: AdamW's learning rate.
        weight_decay: AdamW's weight decay.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Examples:
        >>> import torch, grukit
        >>> from grukit.train import TaskModule
        >>> class LastStep(TaskModule):
        ...     def step(self, batch, stage):
        ...         x, y = batch  # x (T, B, I), y (B, H)
        ...         out, h_n = self.model(x)  # out (T, B, H)
        ...         return torch.nn.functional.mse_loss(out[-1], y)
        >>> module = LastStep(grukit.GRU(3, 4), lr=1e-2)
        >>> module.step((torch.randn(5, 2, 3), torch.zeros(2, 4)), "train").shape
        torch.Size([])
    """

    def __init__(self, model: nn.Module, lr: float = 1e-3, weight_decay: float = 0.0) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"TaskModule expected an nn.Module as model, got {type(model).__name__}"
            )
        self.model = model
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)

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

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def _batch_size(batch: Any) -> int | None:
    if isinstance(batch, Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_size(batch[0])
    if isinstance(batch, dict) and batch:
        return _batch_size(next(iter(batch.values())))
    return None
