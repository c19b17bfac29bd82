"""The shipped models: accuracy on the official FSDD test split (labels from the file names are the oracle),
digit strings with `predict --sequence`, and `stream`'s final answer with the shipped streaming model."""

import numpy as np
import pytest

import grukit
from grukit.tasks.digits import data as D
from grukit.tasks.digits.evaluate import evaluate_records, split_records
from grukit.tasks.digits.predict import OFFLINE_MODEL, STREAM_MODEL, load_model

from ._digits_util import fsdd_dir, fsdd_file, write_wav


@pytest.fixture(scope="module")
def test_records():
    return split_records(fsdd_dir(), "test")


def test_shipped_files_hold_the_documented_models():
    for path in (OFFLINE_MODEL, STREAM_MODEL):
        assert path.is_file() and path.stat().st_size <= 25 * 2**20
    offline, header = grukit.load(OFFLINE_MODEL, return_header=True)
    assert header["task"] == "digits" and offline.config.bidirectional and not offline.streamable
    assert offline.config.normalization in ("utterance", "running")
    stream = grukit.load(STREAM_MODEL)
    assert stream.streamable and stream.config.normalization == "running"


@pytest.mark.parametrize("stream, floor", [(False, 0.98), (True, 0.97)])
def test_shipped_model_accuracy_on_official_test_split(stream, floor, test_records):
    res = evaluate_records(load_model(stream=stream), test_records)
    assert res["n"] == 300
    assert res["accuracy"] >= floor, res["per_speaker"]


def test_predict_sequence_reads_a_digit_string(tmp_path, cli):
    names = [
        "3_theo_2.wav",
        "8_yweweler_0.wav",
        "0_george_4.wav",
        "5_jackson_1.wav",
        "1_lucas_3.wav",
    ]
    spec = D.FeatureSpec()
    rng = np.random.default_rng(0)
    gap = lambda: 2e-4 * rng.standard_normal(int(0.35 * 8000))  # noqa: E731 — a pause with faint noise
    parts = [gap()]
    for n in names:
        parts += [D.load_audio(fsdd_file(n), spec), gap()]
    path = write_wav(tmp_path / "seq.wav", np.concatenate(parts))
    code, out, err = cli("digits", "predict", path, "--sequence")
    assert code == 0, err
    fields = out.strip().split("\t")
    assert fields[1] == "".join(n[0] for n in names), out


def test_stream_command_with_shipped_model(cli):
    f = fsdd_file("6_theo_3.wav")
    code, out, err = cli("digits", "predict", f, "--stream")
    assert code == 0, err
    label = out.split("\t")[1]
    code, out, err = cli("digits", "stream", f, "--no-sleep")
    assert code == 0, err
    final = out.strip().splitlines()[-1].split()
    assert final[0] == "final" and final[1] == label == "6"


def test_docs_page_numbers_match_the_results_file():
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    res = json.loads((root / "benchmarks" / "results" / "digits.json").read_text())
    section = (root / "docs" / "digits.md").read_text()  # the Spoken digits page
    for key, name in (("offline", "digits-fsdd`"), ("stream", "digits-fsdd-stream`")):
        row = next(line for line in section.splitlines() if f"`{name}" in line)
        acc = res["official_split"][key]["test_accuracy"]
        assert f"{100 * acc:.1f} %" in row and f"{round(acc * 300)}/300" in row
    for key, label in (
        ("leave_one_speaker_out", "utterance"),
        ("leave_one_speaker_out_running", "running"),
    ):
        loso = res[key]
        row = next(
            line
            for line in section.splitlines()
            if line.startswith(f"| accuracy, {label} normalization")
        )
        cells = [c.strip().strip("*") for c in row.strip("|").split("|")[1:]]
        want = [f"{100 * loso['folds'][s]['test_accuracy']:.1f} %" for s in D.SPEAKERS]
        assert cells == want + [f"{100 * loso['mean_accuracy']:.1f} %"]
