"""The shipped models load, evaluate to the numbers recorded in benchmarks/results/music.json, and generate."""

import json
from pathlib import Path

import pretty_midi
import pytest

import grukit
from grukit.tasks.music import PAPER
from grukit.tasks.music.data import load_dataset
from grukit.tasks.music.evaluate import evaluate_nll, shipped_model_path
from grukit.tasks.music.model import MusicGRU

ROOT = Path(__file__).resolve().parents[3]
RESULTS = json.loads((ROOT / "benchmarks" / "results" / "music.json").read_text())


@pytest.mark.parametrize("dataset", ["jsb", "nottingham", "musedata", "piano"])
def test_shipped_model_reproduces_recorded_test_nll(dataset):
    path = shipped_model_path(dataset)
    assert path.is_file(), f"missing shipped model {path}"
    assert path.stat().st_size <= 25 * 2**20
    model = grukit.load(path)
    assert isinstance(model, MusicGRU)
    rec = RESULTS["shipped"][dataset]
    assert rec["file"] == f"grukit/pretrained/music-{dataset}.safetensors"
    test = load_dataset(dataset)["test"]
    if dataset == "jsb":  # small: the whole test split, the number in the README table
        res = evaluate_nll(model, test, batch_size=32)
        assert abs(res["nll_per_step"] - rec["test_nll_per_step"]) < 1e-4
        # the claim, from the number computed here against the published GRU (Chung et al. 2014)
        assert rec["beats_paper_gru"] == (res["nll_per_step"] <= PAPER[dataset]["gru"])
    else:  # the full splits were re-evaluated from the shipped file by benchmarks/music_results.py; CI checks
        # the shortest test sequences against the number recorded then (keeps the suite within its CPU budget)
        check = rec["quick_check"]
        res = evaluate_nll(model, [test[i] for i in check["test_indices"]], batch_size=32)
        assert (
            res["frames"] == check["frames"]
            and abs(res["nll_per_step"] - check["nll_per_step"]) < 1e-4
        )
    # (for the other data sets the full test split is not re-scored here, so their beats_paper_gru claim is
    # checked by benchmarks/music_results.py when it records the full numbers, not by comparing the file
    # with itself)


@pytest.mark.slow
def test_evaluate_and_generate_without_checkpoint(tmp_path, cli_subprocess):
    r = cli_subprocess(
        "music", "evaluate", "--dataset", "jsb", "--json", str(tmp_path / "e.json"), cwd=tmp_path
    )
    assert r.code == 0, r.err
    out = json.loads((tmp_path / "e.json").read_text())
    assert abs(out["nll_per_step"] - RESULTS["shipped"]["jsb"]["test_nll_per_step"]) < 1e-4
    assert f"{out['nll_per_step']:.3f}" in r.out and "8.54" in r.out and "8.67" in r.out
    r = cli_subprocess("music", "generate", "--steps", "32", "--out", "song.mid", cwd=tmp_path)
    assert r.code == 0, r.err
    notes = pretty_midi.PrettyMIDI(str(tmp_path / "song.mid")).instruments[0].notes
    assert notes and all(21 <= n.pitch <= 108 for n in notes) and (tmp_path / "song.png").is_file()
