"""Smoke training on a slice of SST-2 train: the loss falls, the run folder is complete, the model beats chance
on its training slice; the CLI predicts, explains and refuses bad input with exit code 2."""

import json

import pytest

import grukit
from grukit.tasks.sentiment.model import SentimentGRU
from grukit.tasks.sentiment.train import SentimentTrainConfig, train

SMALL = dict(
    embed_dim=32,
    hidden_size=32,
    dropout=0.1,
    embed_dropout=0.0,
    lr=5e-3,
    batch_size=32,
    max_train=3000,
    patience=None,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sent") / "run"
    rec = train(
        SentimentTrainConfig(epochs=3, **SMALL),
        output_dir=out,
        progress=False,
        threads=1,
        baselines=False,
    )
    return out, rec


@pytest.mark.slow
def test_smoke_training_learns_and_writes_the_run_folder(run):
    out, rec = run
    for name in ("model.safetensors", "last.ckpt", "config.json", "metrics.json", "log.csv"):
        assert (out / name).is_file(), name
    log = (out / "log.csv").read_text().splitlines()
    cols = log[0].split(",")
    rows = [dict(zip(cols, r.split(","))) for r in log[1:]]
    assert len(rows) == 3
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        metrics["task"] == "sentiment"
        and metrics["split"] == "test"
        and metrics["model"]["n"] == 1821
    )
    assert 0.0 <= metrics["model"]["accuracy"] <= 1.0
    model = grukit.load(out / "model.safetensors")
    assert isinstance(model, SentimentGRU)
    # the vocabulary came from the 3,000 training phrases only
    from grukit.tasks.sentiment.data import build_vocab, load_split

    assert model.encoder.vocab == build_vocab(load_split("train")[0][:3000])
    # it has learnt its training slice well beyond chance
    from grukit.tasks.sentiment.evaluate import accuracy

    tr, y = load_split("train")
    assert accuracy(model, tr[:3000], y[:3000])["accuracy"] > 0.75


def test_cli_predict_explain_and_evaluate(run, tmp_path, cli):
    out, rec = run
    p = cli("sentiment", "predict", "--checkpoint", str(out), "--json", "a good film", "bad")
    assert p.code == 0, p.err
    lines = [json.loads(x) for x in p.out.splitlines()]
    assert [x["text"] for x in lines] == ["a good film", "bad"]
    assert all(x["label"] == ("positive" if x["p_positive"] > 0.5 else "negative") for x in lines)
    e = cli(
        "sentiment", "predict", "--checkpoint", str(out), "--explain", "--json", "not a good film"
    )
    ex = json.loads(e.out)
    assert ex["words"] == ["not", "a", "good", "film"] and len(ex["contributions"]) == 4
    f = tmp_path / "s.txt"
    f.write_text("one fine movie\n\nterrible\n")
    t = cli("sentiment", "predict", "--checkpoint", str(out), "--file", str(f), "--explain")
    assert t.code == 0 and "one fine movie" in t.out and "terrible" in t.out
    js = tmp_path / "ev.json"
    v = cli("sentiment", "evaluate", "--checkpoint", str(out), "--split", "test", "--json", str(js))
    assert v.code == 0, v.err
    assert json.loads(js.read_text())["accuracy"] == pytest.approx(
        rec["model"]["accuracy"], abs=1e-9
    )


@pytest.mark.parametrize(
    "args,msg",
    [
        (["sentiment", "predict"], "give sentences"),
        (["sentiment", "predict", "--file", "/nonexistent.txt"], "no such file"),
        (["sentiment", "evaluate", "--split", "validation"], "split must be one of"),
        (["sentiment", "evaluate", "--checkpoint", "/nonexistent"], "no such file or run folder"),
    ],
)
def test_cli_user_errors_exit_2(run, args, msg, cli):
    out, _ = run
    if "--checkpoint" not in args:
        args = args[:2] + ["--checkpoint", str(out)] + args[2:]
    code, _, err = cli(*args)
    assert code == 2 and msg in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_cli_resume_refuses_conflicting_options_and_restores_the_saved_ones(run, tmp_path, cli):
    import shutil

    out, _ = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    before = _files(copy)
    for extra, msg in (
        (["--max-train", "100"], "--max-train 3000, got 100"),  # a data option
        (["--min-freq", "2"], "--min-freq 1, got 2"),  # it changes the vocabulary
        (["--hidden", "64"], "--hidden 32, got 64"),
    ):
        args = [
            "sentiment",
            "train",
            "--resume",
            str(copy),
            "--epochs",
            "4",
            "--no-progress",
            *extra,
        ]
        code, _, err = cli(*args)
        assert code == 2 and msg in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
        assert _files(copy) == before
    args = ["sentiment", "train", "--resume", str(copy), "--epochs", "4", "--no-progress"]
    code, _, err = cli(*args, "--threads", "1", "--no-baselines")
    assert code == 0, err
    cfg = json.loads((copy / "config.json").read_text())
    assert {k: cfg[k] for k in SMALL} == SMALL and cfg["epochs"] == 4


def test_cli_existing_output_dir_needs_overwrite(run, cli):
    out, _ = run
    before = _files(out)
    code, _, err = cli("sentiment", "train", "--output-dir", str(out))
    assert code == 2 and "already holds files" in err and "--overwrite" in err, err
    assert len(err.strip().splitlines()) == 1 and _files(out) == before
