"""Faults only ``grukit forecast`` has (issue 27, items 2, 7) through the real CLI in-process, on a tiny
slice of the built-in weather data: non-finite forecasts are refused, a model too large for the memory is
refused before it is built, Ctrl-C in an ensemble member says how to resume the run.

The faults every recipe shares — Ctrl-C then ``--resume RUN`` bit-identical, a complete run left alone, a
diverging run stopping at its epoch — and forecast's own resume cases (items 1, 4, 11: changed data
refused, ``predict`` refusing an incomplete run's model, the summary naming every file) are forecast's row
of the recipe contract, tests/train/test_recipe_contract.py."""

from __future__ import annotations

import json
from pathlib import Path

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
