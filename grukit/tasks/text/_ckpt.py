"""``SaveLastEveryEpoch``: write the run folder's ``last.ckpt`` at the end of every training epoch.

``grukit.train.fit`` registers ``ModelCheckpoint(save_last=True, save_top_k=0)``; with Lightning 2.6 that
writes ``last.ckpt`` only when training ends (``save_last`` follows a top-k save, and there is none), so a
run killed mid-way could not be resumed. Long recipe runs add this callback (used by the text and
sentiment recipes) until the toolkit writes it every epoch itself.
"""
from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback


class SaveLastEveryEpoch(Callback):
    """Save ``path`` (a full Lightning checkpoint, for ``--resume``) after each training epoch, atomically."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        tmp = self.path.with_name(f".tmp-{self.path.name}")
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
