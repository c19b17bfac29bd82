"""Faults, per recipe (music, text, sentiment, translate, digits), through the real CLI in-process.

One row per recipe (a recipe contract test can absorb ``RECIPES`` as rows): the tiniest training run the
recipe allows, then

- **resume**: a run stopped by Ctrl-C after its first epoch (exit 130, the message says how to continue,
  the folder says ``"interrupted"``), continued with ``--resume RUN`` alone, ends with a model file
  byte-identical to an uninterrupted run's, the same metrics and the same ``log.csv`` numbers; resuming the
  finished run prints "already complete" and leaves every file as it was (item 2);
- **divergence**: ``--lr 1e38`` makes the loss non-finite; the run stops with exit 2 and one line naming the
  epoch, and nothing is reported as a result (item 6).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from support import one_line_error

from grukit.train.loop import EpochSeed

QUIET = ["--no-progress"]

#: task -> the options of its tiniest training run (the tests add --epochs, --output-dir, --resume).
RECIPES: dict[str, list[str]] = {
    "music": ["--hidden", "8", "--max-train-sequences", "4", "--batch-size", "4", *QUIET],
    "text": [
        *("--hidden", "16", "--layers", "1", "--embed-dim", "8", "--seq-len", "16"),
        *("--batch-size", "8", "--max-train-chars", "3000", "--max-valid-chars", "4500", *QUIET),
    ],
    "sentiment": [
        *("--hidden", "8", "--embed-dim", "8", "--max-train", "200", "--batch-size", "32"),
        *("--no-baselines", *QUIET),
    ],
    "translate": [
        *("--limit-train-pairs", "48", "--limit-valid-pairs", "16", "--vocab", "300"),
        *("--emb-dim", "8", "--enc-hidden", "8", "--dec-hidden", "16", "--batch-size", "16"),
        *("--eval-beam", "0", "--max-len", "12"),
    ],
    "digits": [
        *("--subset", "30", "--hidden-size", "8", "--num-layers", "1", "--n-mels", "16"),
        *("--batch-size", "8", "--unidirectional"),
    ],
}
TASKS = list(RECIPES)


def _train(task: str, *extra: object) -> list[object]:
    return [task, "train", *RECIPES[task], "--threads", "1", *extra]


def _quiet(task: str) -> list[str]:
    return QUIET if QUIET[0] in RECIPES[task] else []


def _config(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


def _log_numbers(run: Path) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO((run / "log.csv").read_text())))
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def _snapshot(run: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir()}


def _stop_at_epoch(monkeypatch, epoch: int) -> None:
    """Press Ctrl-C (raise KeyboardInterrupt) as epoch ``epoch`` starts, where Lightning catches it."""
    original = EpochSeed.on_train_epoch_start

    def start(self, trainer, module):
        if trainer.current_epoch == epoch:
            raise KeyboardInterrupt
        original(self, trainer, module)

    monkeypatch.setattr(EpochSeed, "on_train_epoch_start", start)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_resume_after_ctrl_c_is_bit_identical_and_a_finished_run_is_left_alone(
    task, cli, tmp_path, monkeypatch
):
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    r = cli(*_train(task, "--epochs", "2", "--output-dir", whole))
    assert r.code == 0, r.err[-2000:]
    assert _config(whole)["status"] == "complete"

    with monkeypatch.context() as m:
        _stop_at_epoch(m, 1)
        r = cli(*_train(task, "--epochs", "2", "--output-dir", stopped))
    assert r.code == 130, r.err[-2000:]
    assert r.err_lines[-1] == f"interrupted; continue with `grukit {task} train --resume {stopped}`"
    assert _config(stopped)["status"] == "interrupted"
    assert (stopped / "last.ckpt").is_file() and not (stopped / "metrics.json").exists()

    # --resume alone: the stored options (--epochs 2 included, not the CLI's default) and data
    r = cli(task, "train", "--resume", stopped, *_quiet(task))
    assert r.code == 0, r.err[-2000:]
    assert _config(stopped)["status"] == "complete" and _config(stopped)["epochs"] == 2
    assert (stopped / "model.safetensors").read_bytes() == (
        whole / "model.safetensors"
    ).read_bytes()
    assert _log_numbers(stopped) == _log_numbers(whole)
    metrics = [d / "metrics.json" for d in (whole, stopped)]
    assert metrics[0].exists() == metrics[1].exists()  # translate with --eval-beam 0 writes none
    if metrics[0].exists():
        m = [json.loads(f.read_text())["model"] for f in metrics]
        assert m[0] == m[1]

    before = _snapshot(whole)
    r = cli(task, "train", "--resume", whole, *_quiet(task))
    assert r.code == 0 and "already complete" in r.out, (r.out, r.err[-2000:])
    assert _snapshot(whole) == before  # nothing retrained, nothing overwritten


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_a_diverging_run_stops_naming_the_epoch(task, cli, tmp_path):
    out = tmp_path / "run"
    r = cli(*_train(task, "--epochs", "3", "--lr", "1e37", "--output-dir", out))
    line = one_line_error(r, "training diverged", " at epoch ")
    epoch = int(line.split(" at epoch ")[1].split()[0])
    if epoch == 0:  # nothing to resume: the folder this run made is gone
        assert not out.exists()
    else:  # kept for --resume and inspection, but never marked complete or given results
        assert _config(out)["status"] == "diverged"
        assert not (out / "metrics.json").exists()


@pytest.mark.slow
def test_resume_reads_the_recorded_data_and_refuses_changed_data(cli, tmp_path, monkeypatch):
    """Item 1: the run records its data folder (path + sha256) in config.json; ``--resume RUN`` alone reads
    that folder (not ``$GRUKIT_DATA``) and ends bit-identical to the uninterrupted run; data changed at the
    same path since the start is refused, and the run folder is left as it was."""
    import shutil

    data = tmp_path / "music-data"
    shutil.copytree(Path(os.environ["GRUKIT_DATA"]) / "polyphonic_music", data)
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    args = _train("music", "--epochs", "2", "--data-dir", data)
    assert cli(*args, "--output-dir", whole).code == 0
    with monkeypatch.context() as m:
        _stop_at_epoch(m, 1)
        assert cli(*args, "--output-dir", stopped).code == 130
    recorded = _config(stopped)["inputs"]["--data-dir"]
    assert recorded["path"] == str(data.resolve()) and len(recorded["sha256"]) == 64
    again = shutil.copytree(stopped, tmp_path / "stopped-again")

    monkeypatch.setenv("GRUKIT_DATA", str(tmp_path / "nowhere"))  # only the recorded path can serve
    r = cli("music", "train", "--resume", stopped, "--no-progress")
    assert r.code == 0, r.err[-2000:]
    assert (stopped / "model.safetensors").read_bytes() == (
        whole / "model.safetensors"
    ).read_bytes()

    jsb = data / "JSB_Chorales.mat"
    jsb.write_bytes(jsb.read_bytes()[:-1] + bytes([jsb.read_bytes()[-1] ^ 1]))  # one bit changed
    before = _snapshot(again)
    r = cli("music", "train", "--resume", again, "--no-progress")
    one_line_error(r, f"--data-dir {data.resolve()} has changed since the run started")
    assert _snapshot(again) == before
