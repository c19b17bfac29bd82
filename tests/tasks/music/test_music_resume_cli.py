"""`grukit music train` through the console entry point: --resume restores the run's options (the one
grukit.train.resumed_config) and refuses a conflicting data option; an existing --output-dir is refused
unless --overwrite. Tiny runs: 4 chorales, hidden 8, one epoch."""

import json

import pytest

TINY = ["--hidden", "8", "--max-train-sequences", "4", "--batch-size", "4", "--threads", "1"]


@pytest.fixture
def run1(tmp_path, cli):
    out = tmp_path / "run"
    args = ["music", "train", "--output-dir", out, "--epochs", "1", "--no-progress", *TINY]
    code, _, err = cli(*args)
    assert code == 0, err
    return out


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_resume_refuses_a_conflicting_data_option(run1, cli):
    before = _files(run1)
    for extra, msg in (
        (["--dataset", "nottingham"], "--dataset 'jsb', got 'nottingham'"),
        (["--max-train-sequences", "5"], "--max-train-sequences 4, got 5"),
        (["--hidden", "16"], "--hidden 8, got 16"),
    ):
        args = ["music", "train", "--resume", run1, "--epochs", "2", "--no-progress", *extra]
        code, _, err = cli(*args)
        assert code == 2 and msg in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
        assert _files(run1) == before  # nothing written, nothing mixed


def test_resume_restores_the_saved_options(run1, cli):
    # only --resume and the new --epochs: hidden 8 and 4 training sequences come from config.json
    args = ["music", "train", "--resume", run1, "--epochs", "2", "--no-progress", "--threads", "1"]
    code, _, err = cli(*args)
    assert code == 0, err
    cfg = json.loads((run1 / "config.json").read_text())
    assert (cfg["hidden_size"], cfg["max_train_sequences"], cfg["epochs"]) == (8, 4, 2)
    assert len((run1 / "log.csv").read_text().splitlines()) == 3  # header + the two epochs


def test_existing_output_dir_needs_overwrite(run1, cli):
    before = _files(run1)
    args = ["music", "train", "--output-dir", run1, "--epochs", "1", "--no-progress", *TINY]
    code, _, err = cli(*args)
    assert code == 2 and "already holds files" in err and "--overwrite" in err, err
    assert _files(run1) == before
    code, _, err = cli(*args, "--overwrite", "--seed", "1")
    assert code == 0, err
    assert json.loads((run1 / "config.json").read_text())["seed"] == 1


def test_piped_train_output_keeps_a_long_run_folder_on_one_line(tmp_path, cli):
    # stdout is captured (not a terminal): rich must not wrap the summary line at 80 columns
    out = tmp_path / ("a-rather-long-folder-name-" * 4) / "run"
    code, printed, err = cli(
        "music", "train", "--output-dir", out, "--epochs", "1", "--no-progress", *TINY
    )
    assert code == 0, err
    line = next(ln for ln in printed.splitlines() if ln.startswith("valid NLL/step"))
    assert line.endswith(f"run folder: {out}") and len(line) > 80, printed
