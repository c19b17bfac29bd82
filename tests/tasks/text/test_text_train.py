"""Smoke training on a slice: the loss falls, the run folder is complete, resume continues the same run;
the CLI streams reproducible text and refuses bad input with exit code 2."""

import json
import math

import pytest
import torch

import grukit
from grukit.tasks.text.model import CharLM
from grukit.tasks.text.train import TextTrainConfig, train

SMALL = dict(
    embed_dim=16,
    hidden_size=48,
    num_layers=2,
    dropout=0.0,
    lr=1e-2,
    batch_size=8,
    seq_len=32,
    max_train_chars=24_000,
    max_valid_chars=4_000,
    val_streams=4,
    val_seq_len=64,
    eval_streams=2,
    epoch_parts=1,
    clip=5.0,
)


@pytest.fixture(scope="module")
def run2(tmp_path_factory):
    out = tmp_path_factory.mktemp("text") / "run"
    rec = train(TextTrainConfig(epochs=2, **SMALL), output_dir=out, progress=False, threads=1)
    return out, rec


def test_smoke_training_learns_and_writes_the_run_folder(run2):
    out, rec = run2
    for name in ("model.safetensors", "last.ckpt", "config.json", "metrics.json", "log.csv"):
        assert (out / name).is_file(), name
    log = (out / "log.csv").read_text().splitlines()
    assert len(log) == 3
    rows = [dict(zip(log[0].split(","), r.split(","))) for r in log[1:]]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"]) < math.log(65)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "text" and metrics["split"] == "valid"
    nats = metrics["model"]["nats_per_char"]
    assert (
        nats < metrics["baselines"]["unigram"]["nats_per_char"] < math.log(65)
    )  # beats character frequencies
    model = grukit.load(out / "model.safetensors")
    assert isinstance(model, CharLM) and len(model.vocab) == 65


def test_interrupted_run_keeps_last_ckpt_and_resumes_to_the_same_weights(
    run2, tmp_path, monkeypatch
):
    out2, _ = run2
    part = tmp_path / "part"
    from grukit.tasks.text.train import TextModule

    def crash(self):  # the process dies at the start of the second epoch
        if self.current_epoch == 1:
            raise RuntimeError("simulated crash")
        self._state["train"] = None

    with monkeypatch.context() as mp:
        mp.setattr(TextModule, "on_train_epoch_start", crash)
        with pytest.raises(RuntimeError, match="simulated crash"):
            train(TextTrainConfig(epochs=2, **SMALL), output_dir=part, progress=False, threads=1)
    assert (part / "last.ckpt").is_file() and (
        part / "model.safetensors"
    ).is_file()  # the folder is kept
    assert torch.load(part / "last.ckpt", weights_only=True)["epoch"] == 0
    # only the new total of epochs is given: the model and data options come from the run's config.json
    train(TextTrainConfig(epochs=2), resume=part, progress=False, threads=1)
    a = torch.load(part / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(out2 / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-6, atol=1e-7), k
    assert len((part / "log.csv").read_text().splitlines()) == 3


def test_init_from_starts_at_the_given_weights(run2, tmp_path):
    out2, _ = run2
    from grukit.tasks.text.train import init_weights

    src = grukit.load(out2 / "model.safetensors")
    cfg = src.config
    fresh = CharLM(cfg.vocab, cfg.embed_dim, cfg.hidden_size, cfg.num_layers, cfg.dropout)
    init_weights(fresh, out2)
    assert all(
        torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), src.state_dict().values())
    )
    other = CharLM(cfg.vocab, cfg.embed_dim, cfg.hidden_size + 1, cfg.num_layers, cfg.dropout)
    from grukit.errors import UserInputError

    with pytest.raises(UserInputError, match="--init-from"):
        init_weights(other, out2)


def test_epoch_parts_cut_a_pass_into_epochs(tmp_path):
    cfg = TextTrainConfig(epochs=2, **{**SMALL, "epoch_parts": 2})
    rec = train(cfg, output_dir=tmp_path / "p", progress=False, threads=1)
    steps = [
        int(r.split(",")[1]) for r in (tmp_path / "p" / "log.csv").read_text().splitlines()[1:]
    ]
    windows = (24_000 // 8 - 1) // 32  # full windows in one pass
    assert steps == [round(windows / 2), windows] and rec["passes"] == 1.0


def test_cli_generate_perplexity_and_errors(run2, tmp_path, cli):
    out, rec = run2
    gen = (
        "text",
        "generate",
        "--checkpoint",
        out,
        "--prompt",
        "KING:",
        "--length",
        "80",
        "--seed",
        "5",
    )
    a, b = cli(*gen), cli(*gen)  # the same seed gives the same text
    assert a.code == 0 and a.out == b.out
    assert a.out.startswith("KING:") and len(a.out) == len("KING:") + 80 + 1
    js = tmp_path / "ppl.json"
    p = cli(
        "text",
        "perplexity",
        "--checkpoint",
        str(out),
        "--max-chars",
        "4000",
        "--streams",
        "2",
        "--json",
        str(js),
    )
    assert p.code == 0, p.err
    assert json.loads(js.read_text())["nats_per_char"] == pytest.approx(
        rec["model"]["nats_per_char"], rel=1e-6
    )


@pytest.mark.parametrize(
    "args,msg",
    [
        (["text", "generate", "--prompt", "\u00e9"], "not in the model's vocabulary"),
        (["text", "generate", "--checkpoint", "/nonexistent/run"], "no such file or run folder"),
        (["text", "perplexity", "--text-file", "/nonexistent.txt"], "no such file"),
    ],
)
def test_cli_user_errors_exit_2(run2, args, msg, cli):
    out, _ = run2
    if "--checkpoint" not in args:
        args = args[:2] + ["--checkpoint", str(out)] + args[2:]
    code, _, err = cli(*args)
    assert code == 2 and msg in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_cli_resume_refuses_conflicting_options_and_restores_the_saved_ones(run2, tmp_path, cli):
    import shutil

    out, _ = run2
    run = tmp_path / "run"
    shutil.copytree(out, run)  # the fixture's run stays as it is for the other tests
    before = _files(run)
    for extra, msg in (
        (["--max-train-chars", "5000"], "--max-train-chars 24000, got 5000"),  # a data option
        (["--hidden", "64"], "--hidden 48, got 64"),  # named as the command line spells it
    ):
        args = ["text", "train", "--resume", str(run), "--epochs", "3", "--no-progress", *extra]
        code, _, err = cli(*args)
        assert code == 2 and msg in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
        assert _files(run) == before
    # only --resume and the new total: the SMALL options come back from config.json
    args = [
        "text",
        "train",
        "--resume",
        str(run),
        "--epochs",
        "3",
        "--no-progress",
        "--threads",
        "1",
    ]
    code, _, err = cli(*args)
    assert code == 0, err
    cfg = json.loads((run / "config.json").read_text())
    assert {k: cfg[k] for k in SMALL} == SMALL and cfg["epochs"] == 3
    assert len((run / "log.csv").read_text().splitlines()) == 4


def test_cli_existing_output_dir_needs_overwrite(run2, cli):
    out, _ = run2
    before = _files(out)
    code, _, err = cli("text", "train", "--output-dir", str(out))
    assert code == 2 and "already holds files" in err and "--overwrite" in err, err
    assert len(err.strip().splitlines()) == 1 and _files(out) == before


def test_cli_output_dir_below_a_file_is_one_line(tmp_path, cli):
    f = tmp_path / "file.txt"
    f.write_text("x")
    code, _, err = cli("text", "train", "--output-dir", str(f / "run"))
    assert code == 2 and f"{f} is a file, not a folder" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
