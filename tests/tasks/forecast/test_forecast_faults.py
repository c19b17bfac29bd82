"""Faults of ``grukit forecast`` (issue 27, items 1, 2, 4, 6, 11) through the real CLI in-process, on a
tiny slice of the built-in weather data: a run stopped by Ctrl-C continues with ``--resume RUN`` alone
and ends bit-identical to an uninterrupted run; changed data at the recorded path is refused; a complete
run is left alone; ``predict`` refuses an incomplete run's model; a diverging run stops naming the epoch
and writes no metrics or forecast."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from support import one_line_error

from grukit.tasks.forecast import data as D
from grukit.train.loop import EpochSeed

TINY = [
    *("--time-col", "date", "--target", "temp_max", "--horizon", "7", "--context", "14"),
    *("--backtest", "1", "--baselines", "none", "--threads", "1"),
]


@pytest.fixture
def tiny_csv(tmp_path) -> Path:
    path = tmp_path / "tiny.csv"
    D.load_builtin("weather").iloc[:300][["date", "temp_max"]].to_csv(path, index=False)
    return path


def _config(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


def _snapshot(run: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir() if p.is_file()}


def _stop_at_epoch(monkeypatch, epoch: int) -> None:
    """Press Ctrl-C (raise KeyboardInterrupt) as epoch ``epoch`` starts, where Lightning catches it."""
    original = EpochSeed.on_train_epoch_start

    def start(self, trainer, module):
        if trainer.current_epoch == epoch:
            raise KeyboardInterrupt
        original(self, trainer, module)

    monkeypatch.setattr(EpochSeed, "on_train_epoch_start", start)


@pytest.mark.slow
def test_resume_after_ctrl_c_is_bit_identical_and_changed_data_is_refused(
    cli, tmp_path, tiny_csv, monkeypatch
):
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    args = ["forecast", "--csv", tiny_csv, *TINY, "--hidden", "4", "--epochs", "2"]
    r = cli(*args, "--output-dir", whole)
    assert r.code == 0, r.err[-2000:]
    assert _config(whole)["status"] == "complete"
    # item 11: the summary names every file of the folder
    assert f"run folder {whole}: " in r.out.replace("\n", "")
    for name in (p.name for p in whole.iterdir() if p.is_file() and p.name[0] != "."):
        assert name in r.out.replace("\n", ""), name

    with monkeypatch.context() as m:
        _stop_at_epoch(m, 1)
        r = cli(*args, "--output-dir", stopped)
    assert r.code == 130, r.err[-2000:]
    assert r.err_lines[-1] == f"interrupted; continue with `grukit forecast --resume {stopped}`"
    cfg = _config(stopped)
    assert cfg["status"] == "interrupted"
    assert cfg["inputs"]["--csv"]["path"] == str(tiny_csv.resolve())
    assert not (stopped / "metrics.json").exists() and not (stopped / "forecast.csv").exists()

    # item 4: an incomplete run's model is refused by predict unless --allow-incomplete
    pred = ["forecast", "predict", "--checkpoint", stopped, "--csv", tiny_csv]
    one_line_error(
        cli(*pred, "--output-dir", tmp_path / "p1"), "incomplete run", "--allow-incomplete"
    )
    assert not (tmp_path / "p1").exists()
    r = cli(*pred, "--output-dir", tmp_path / "p2", "--allow-incomplete")
    assert r.code == 0, r.err[-2000:]
    assert (tmp_path / "p2" / "forecast.csv").is_file()

    # item 1: data changed at the same path is refused, the folder left as it was
    kept = tiny_csv.read_bytes()
    df = pd.read_csv(tiny_csv)
    df["temp_max"] *= 100
    df.to_csv(tiny_csv, index=False)
    before = _snapshot(stopped)
    r = cli("forecast", "--resume", stopped)
    one_line_error(r, f"--csv {tiny_csv.resolve()} has changed since the run started")
    assert _snapshot(stopped) == before

    # items 1-2: --resume RUN alone (stored --epochs 2, data from the recorded path) = the whole run
    tiny_csv.write_bytes(kept)
    r = cli("forecast", "--resume", stopped)
    assert r.code == 0, r.err[-2000:]
    assert _config(stopped)["status"] == "complete" and _config(stopped)["epochs"] == 2
    for name in ("model.safetensors", "forecast.csv", "backtest.csv"):
        assert (stopped / name).read_bytes() == (whole / name).read_bytes(), name
    m = [json.loads((d / "metrics.json").read_text())["model"] for d in (whole, stopped)]
    assert m[0] == m[1]

    # item 2: a complete run is left alone
    before = _snapshot(whole)
    r = cli("forecast", "--resume", whole)
    assert r.code == 0 and "already complete" in r.out, (r.out, r.err[-2000:])
    assert _snapshot(whole) == before


@pytest.mark.slow
def test_a_diverging_run_stops_naming_the_epoch(cli, tmp_path, tiny_csv):
    out = tmp_path / "run"
    r = cli(
        "forecast",
        "--csv",
        tiny_csv,
        *TINY,
        "--hidden",
        "4",
        "--epochs",
        "3",
        "--lr",
        "1e37",
        "--output-dir",
        out,
    )
    line = one_line_error(r, "training diverged", " at epoch ")
    epoch = int(line.split(" at epoch ")[1].split()[0])
    if epoch == 0:  # nothing to resume: the folder this run made is gone
        assert not out.exists()
    else:
        assert _config(out)["status"] == "diverged"
        assert not (out / "metrics.json").exists() and not (out / "forecast.csv").exists()


def test_non_finite_forecasts_are_refused():
    from grukit.errors import UserInputError
    from grukit.tasks.forecast.report import check_finite

    check_finite([[1.0, 2.0]], "forecast")
    with pytest.raises(UserInputError, match=r"forecast holds 2 non-finite value\(s\)"):
        check_finite([[float("nan"), float("inf"), 1.0]], "forecast")


def test_a_model_too_large_for_the_memory_is_refused_before_it_is_built(
    cli, tmp_path, tiny_csv, monkeypatch
):
    """Item 7: ``check_model_fits`` runs before the network is built (here the memory the toolkit sees is
    lowered to 64 KB, below what the --hidden 64 network needs to train; the data-size check passes)."""
    import grukit.train.run as R

    monkeypatch.setattr(R, "available_memory", lambda: 64_000)
    out = tmp_path / "run"
    r = cli(
        "forecast", "--csv", tiny_csv, *TINY, "--hidden", "64", "--epochs", "1", "--output-dir", out
    )
    one_line_error(r, "--hidden 64 --layers", "needs more memory to train")
    assert not out.exists()


@pytest.mark.slow
def test_ctrl_c_in_an_ensemble_member_says_how_to_resume_the_run(
    cli, tmp_path, tiny_csv, monkeypatch
):
    out = tmp_path / "run"
    original = EpochSeed.on_train_epoch_start

    def start(self, trainer, module):  # Ctrl-C as member 1 starts its second epoch
        if trainer.current_epoch == 1 and "member-1" in str(trainer.default_root_dir):
            raise KeyboardInterrupt
        original(self, trainer, module)

    args = [
        "forecast",
        "--csv",
        tiny_csv,
        *TINY,
        "--hidden",
        "4",
        "--epochs",
        "2",
        "--ensemble",
        "2",
    ]
    with monkeypatch.context() as m:
        m.setattr(EpochSeed, "on_train_epoch_start", start)
        r = cli(*args, "--output-dir", out)
    assert r.code == 130, r.err[-2000:]
    assert r.err_lines[-1] == f"interrupted; continue with `grukit forecast --resume {out}`"
    assert _config(out)["status"] == "interrupted" and not (out / "metrics.json").exists()
    r = cli("forecast", "--resume", out)
    assert r.code == 0, r.err[-2000:]
    assert _config(out)["status"] == "complete" and (out / "forecast.csv").is_file()
