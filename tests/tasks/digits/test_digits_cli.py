"""`grukit digits`: smoke training on a slice (files written, loss falls), evaluate/predict/stream on the
trained checkpoint (stream's final answer = the offline prediction), and bad audio → exit 2, one line."""

import json

import numpy as np
import pytest
import torch

import grukit
from grukit.tasks.digits.model import DigitRecognizer

from ._digits_util import fsdd_dir, fsdd_file, write_wav

FILE = "5_lucas_1.wav"


@pytest.fixture(scope="module")
def uni_run(tmp_path_factory):
    """A unidirectional (streaming) model trained 3 epochs on 40 files per split."""
    out = tmp_path_factory.mktemp("digits") / "run"
    mp = pytest.MonkeyPatch()
    import sys

    from grukit.cli import main

    mp.setattr(
        sys,
        "argv",
        [
            "grukit",
            "digits",
            "train",
            "--data-dir",
            str(fsdd_dir()),
            "--output-dir",
            str(out),
            "--unidirectional",
            "--subset",
            "40",
            "--epochs",
            "3",
            "--hidden-size",
            "16",
            "--num-layers",
            "1",
            "--n-mels",
            "20",
            "--batch-size",
            "8",
            "--lr",
            "0.01",
            "--threads",
            "1",
            "--devices",
            "1",
        ],
    )
    try:
        main()
    except SystemExit as e:
        assert not e.code, f"training exited with {e.code}"
    finally:
        mp.undo()
    return out


def test_train_writes_run_folder_and_loss_falls(uni_run):
    for name in ("model.safetensors", "metrics.json", "config.json", "log.csv", "last.ckpt"):
        assert (uni_run / name).is_file(), name
    metrics = json.loads((uni_run / "metrics.json").read_text())
    assert metrics["task"] == "digits" and metrics["dataset"] == "fsdd"
    assert 0.0 <= metrics["model"]["accuracy"] <= 1.0 and metrics["threads"] == 1
    rows = (uni_run / "log.csv").read_text().strip().splitlines()
    col = rows[0].split(",").index("train_loss")
    losses = [float(r.split(",")[col]) for r in rows[1:]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    model = grukit.load(uni_run / "model.safetensors")
    assert isinstance(model, DigitRecognizer) and model.streamable and model.config.n_mels == 20


def test_stream_final_equals_offline_prediction(uni_run, cli):
    code, out, err = cli("digits", "predict", fsdd_file(FILE), "--checkpoint", uni_run)
    assert code == 0, err
    _, label, prob = out.strip().split("\t")
    code, out, err = cli(
        "digits",
        "stream",
        fsdd_file(FILE),
        "--checkpoint",
        uni_run,
        "--no-sleep",
        "--chunk-ms",
        "40",
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) >= 3 and lines[-1].startswith("final ")
    final = lines[-1].split()
    assert final[1] == label and abs(float(final[2].removeprefix("p=")) - float(prob)) < 2e-3


def test_evaluate_prints_accuracy_and_writes_json(uni_run, tmp_path, cli):
    code, out, err = cli(
        "digits",
        "evaluate",
        "--checkpoint",
        uni_run,
        "--split",
        "val",
        "--json",
        tmp_path / "ev.json",
    )
    assert code == 0, err
    res = json.loads((tmp_path / "ev.json").read_text())
    assert res["n"] == 300 and f"accuracy {res['accuracy']:.4f} on 300 files" in out
    conf = np.array(res["confusion"])
    assert conf.sum() == 300 and (conf.sum(1) == 30).all()  # 30 validation files of each digit
    assert np.isclose(np.trace(conf) / 300, res["accuracy"])


@pytest.fixture(scope="module")
def bi_model(tmp_path_factory):
    torch.manual_seed(0)
    return grukit.save(
        DigitRecognizer(hidden_size=4, num_layers=1, n_mels=8),
        tmp_path_factory.mktemp("bi") / "bi.safetensors",
        task="digits",
    )


@pytest.mark.parametrize("verb", ["predict", "stream"])
@pytest.mark.parametrize(
    "kind, match",
    [
        ("garbage", "cannot read audio file"),
        ("empty", "is empty"),
        ("silent", "is silent"),
        ("short", "is too short"),
        ("missing", "not found"),
    ],
)
def test_bad_audio_exits_2_with_one_line(verb, kind, match, bi_model, uni_run, tmp_path, cli):
    path = tmp_path / f"{kind}.wav"
    if kind == "garbage":
        path.write_bytes(b"RIFF0000WAVEnot really")
    elif kind == "empty":
        write_wav(path, np.zeros(0))
    elif kind == "silent":
        write_wav(path, np.zeros(8000))
    elif kind == "short":
        write_wav(path, 0.5 * np.sin(np.arange(120)))
    ckpt = bi_model if verb == "predict" else uni_run
    extra = ["--no-sleep"] if verb == "stream" else []
    code, out, err = cli("digits", verb, path, "--checkpoint", ckpt, *extra)
    assert code == 2
    assert out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:") and match in err


def test_stream_refuses_a_bidirectional_model(bi_model, cli):
    code, out, err = cli(
        "digits",
        "stream",
        fsdd_file(FILE),
        "--checkpoint",
        bi_model,
        "--no-sleep",
    )
    assert code == 2 and "not a streaming model" in err and "Traceback" not in err


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_resume_refuses_conflicting_options_and_restores_the_saved_ones(uni_run, tmp_path, cli):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(uni_run, run)
    before = _files(run)
    for extra, msg in (
        (["--speaker", "theo"], "--speaker None, got 'theo'"),  # a data option: another split
        (["--subset", "50"], "--subset 40, got 50"),
        (
            ["--n-mels", "40"],
            "--n-mels 20, got 40",
        ),  # the default value, typed out, still conflicts
    ):
        code, _, err = cli("digits", "train", "--resume", run, *extra)
        assert code == 2 and msg in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
        assert _files(run) == before
    code, _, err = cli("digits", "train", "--resume", run, "--epochs", "4", "--threads", "1")
    assert code == 0, err
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["unidirectional"], cfg["hidden_size"], cfg["n_mels"], cfg["subset"]) == (
        True,
        16,
        20,
        40,
    )
    assert cfg["epochs"] == 4 and len((run / "log.csv").read_text().splitlines()) == 5


def test_existing_output_dir_needs_overwrite(uni_run, cli):
    before = _files(uni_run)
    code, _, err = cli("digits", "train", "--output-dir", uni_run)
    assert code == 2 and "already holds files" in err and "--overwrite" in err, err
    assert len(err.strip().splitlines()) == 1 and _files(uni_run) == before
