"""Smoke training on a few JSB chorales: the loss falls, the run folder is complete and reloadable."""

import json

import pytest
import torch

import grukit
from grukit.tasks.music.model import MusicGRU
from grukit.tasks.music.train import recipe, train


@pytest.mark.parametrize("chunk", [None, 16])
def test_smoke_training_loss_falls(tmp_path, chunk):
    cfg = recipe(
        "jsb",
        hidden_size=32,
        dropout=0.0,
        input_dropout=0.0,
        batch_size=4,
        epochs=3,
        lr=1e-2,
        max_train_sequences=16,
        seed=0,
    )
    cfg.chunk = chunk
    rec = train(cfg, output_dir=tmp_path / "run", progress=False, threads=1)
    run = tmp_path / "run"
    for name in ("model.safetensors", "metrics.json", "config.json", "log.csv", "last.ckpt"):
        assert (run / name).is_file(), name
    log = (run / "log.csv").read_text().splitlines()
    header = log[0].split(",")
    rows = [dict(zip(header, r.split(","))) for r in log[1:]]
    assert len(rows) == 3
    train_losses = [float(r["train_loss"]) for r in rows]
    val_losses = [float(r["val_loss"]) for r in rows]
    assert train_losses[-1] < train_losses[0] and min(val_losses[1:]) < val_losses[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "music" and metrics["dataset"] == "jsb" and metrics["split"] == "test"
    assert metrics["model"]["nll_per_step"] == rec["model"]["nll_per_step"]
    assert metrics["baselines"]["chung2014_gru"]["nll_per_step"] == 8.54
    model = grukit.load(run / "model.safetensors")
    assert isinstance(model, MusicGRU) and model.config.hidden_size == 32
    # the best model is the epoch with the lowest validation NLL, and its stored number reproduces
    assert abs(metrics["model"]["valid_nll_per_step"] - min(val_losses)) < 1e-4


def test_recipe_overrides_and_bad_dataset():
    cfg = recipe("nottingham", hidden_size=64)
    assert cfg.hidden_size == 64 and cfg.chunk == 50 and cfg.dataset == "nottingham"
    with pytest.raises(ValueError, match="--dataset"):
        recipe("mozart")


def test_model_config_round_trip(tmp_path):
    torch.manual_seed(0)
    m = MusicGRU(hidden_size=24, num_layers=2, dropout=0.2, input_dropout=0.1).eval()
    grukit.save(m, tmp_path / "m.safetensors", task="music")
    m2 = grukit.load(tmp_path / "m.safetensors")
    assert m2.config == m.config
    x = (torch.rand(2, 9, 88) < 0.1).float()
    assert torch.equal(m(x)[0], m2(x)[0])
    with pytest.raises(ValueError, match=r"\(B, T, 88\)"):
        m(torch.zeros(2, 9, 12))


def test_resume_gives_the_same_weights(tmp_path):
    def cfg(epochs):
        c = recipe(
            "jsb",
            hidden_size=16,
            dropout=0.2,
            input_dropout=0.1,
            batch_size=4,
            epochs=epochs,
            lr=5e-3,
            max_train_sequences=8,
            seed=3,
        )
        c.chunk = 10  # truncated BPTT with carried state, several updates per batch
        return c

    train(cfg(3), output_dir=tmp_path / "full", progress=False, threads=1)
    train(cfg(2), output_dir=tmp_path / "part", progress=False, threads=1)
    two = torch.load(tmp_path / "part" / "last.ckpt", weights_only=True)["state_dict"]
    train(cfg(3), resume=tmp_path / "part", progress=False, threads=1)
    full = torch.load(tmp_path / "full" / "last.ckpt", weights_only=True)["state_dict"]
    assert not torch.allclose(
        two["model.head.weight"], full["model.head.weight"]
    )  # the third epoch matters
    part = torch.load(tmp_path / "part" / "last.ckpt", weights_only=True)["state_dict"]
    assert full.keys() == part.keys()
    for k in full:
        a, b = full[k].double(), part[k].double()
        assert (a - b).abs().max() <= 1e-6 * max(b.abs().max().item(), 1e-12), k
