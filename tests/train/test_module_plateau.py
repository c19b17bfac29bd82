"""TaskModule's one scheduler set-up (Plateau → ReduceLROnPlateau), with automatic and with manual
optimization; the oracle is torch's ReduceLROnPlateau replayed on the recorded validation losses. Also the
shared --threads and given_options helpers."""

import csv

import pytest
import torch
import typer
from train_toy import ToyModule, toy_loaders
from typer.testing import CliRunner

import grukit
from grukit.train import Plateau, fit, set_threads
from grukit.train.options import Threads, given_options


class ManualToy(ToyModule):
    """The toy regression with manual optimization (as music uses for truncated BPTT)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        loss = self.step(batch, "train")
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        self.log("train_loss", loss.detach(), on_step=False, on_epoch=True)
        return loss


def _replayed(rows, lr, plateau):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=plateau.mode, factor=plateau.factor, patience=plateau.patience
    )
    out = [opt.param_groups[0]["lr"]]
    for r in rows:
        sched.step(float(r["val_loss"]))
        out.append(opt.param_groups[0]["lr"])
    return out  # the learning rate before epoch 0, 1, ..., and after the last epoch


@pytest.mark.parametrize("cls", [ToyModule, ManualToy])
@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_plateau_schedule_follows_reduce_lr_on_plateau(tmp_path, cls, optimizer):
    lr, plateau = 1e-7, Plateau("val_loss", "min", factor=0.25, patience=1)
    torch.manual_seed(0)
    module = cls(grukit.GRU(3, 8, batch_first=True), lr=lr, optimizer=optimizer, plateau=plateau)
    opt = module.configure_optimizers()["optimizer"]
    assert type(opt) is {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer]
    clip = None if cls is ManualToy else 1.0
    fit(
        module,
        *toy_loaders(),
        output_dir=tmp_path / "r",
        epochs=6,
        gradient_clip=clip,
        progress=False,
        plot=False,
    )
    rows = list(csv.DictReader(open(tmp_path / "r" / "log.csv")))
    got = [float(r["lr"]) for r in rows]
    lrs = _replayed(rows, lr, plateau)
    # log.csv records the rate at the end of validation: with automatic optimization Lightning steps the
    # schedule after that (the rate the epoch used); with manual optimization TaskModule steps it at the end
    # of the validation epoch, just before the row is written (the rate the next epoch uses)
    expected = lrs[1:] if cls is ManualToy else lrs[:-1]
    assert got == pytest.approx(expected, rel=1e-9)
    assert got[-1] < lr  # the schedule did act (a learning rate this small cannot improve val_loss)


def test_plateau_checks_its_arguments():
    with pytest.raises(ValueError, match="mode"):
        Plateau(mode="up")
    with pytest.raises(ValueError, match="factor"):
        Plateau(factor=1.0)
    with pytest.raises(ValueError, match="optimizer"):
        ToyModule(grukit.GRU(2, 2), optimizer="sgd")


def test_set_threads():
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 == torch.get_num_threads()
        assert set_threads(None) == 1
    finally:
        torch.set_num_threads(before)


def test_given_options_tells_typed_from_default():
    app = typer.Typer()
    seen = {}

    @app.command()
    def train(
        ctx: typer.Context,
        hidden: int = typer.Option(8, "--hidden"),
        lr: float = typer.Option(0.1, "--lr"),
        threads: Threads = None,
    ) -> None:
        seen["given"] = given_options(ctx, {"hidden": "hidden_size"})

    r = CliRunner().invoke(app, ["--hidden", "8", "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert seen["given"] == {"hidden_size", "threads"}  # a default value typed out counts as given
    CliRunner().invoke(app, [], env={})
    assert seen["given"] == set()
    CliRunner().invoke(app, ["--lr", "0.5"])
    assert seen["given"] == {"lr"}
    CliRunner().invoke(app, [])
    assert seen["given"] == set()
