"""Run by test_train_ddp.py as a script: Lightning's ddp strategy re-launches this file once per rank."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_toy import toy_loaders, toy_module

from grukit.train import fit


def main(out: str) -> None:
    torch.set_num_threads(1)
    from lightning.pytorch.callbacks import Callback

    class Dump(Callback):
        def on_train_end(self, trainer, pl_module):
            torch.save(
                {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()},
                Path(out) / f"rank{trainer.global_rank}.pt",
            )

    module = toy_module(seed=0)
    train, val = toy_loaders(batch_size=8, n=64)
    fit(
        module,
        train,
        val,
        task="toy",
        output_dir=Path(out) / "run",
        epochs=2,
        seed=0,
        devices=2,
        accelerator="cpu",
        strategy="ddp",
        progress=False,
        plot=False,
        callbacks=[Dump()],
    )


if __name__ == "__main__":
    main(sys.argv[1])
