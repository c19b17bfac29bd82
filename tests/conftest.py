"""Test-wide settings and fixtures: Keras on its torch backend, the shared data sets, a fixed seed.

Shared helpers live in ``tests/support.py``; the fixtures here bind them to pytest's own:

- ``cli``: run ``grukit ...`` in-process, ``cli("forecast", "--help") -> CliResult(code, out, err)``;
- ``cli_subprocess``: the same in a fresh interpreter (signals, kill -9, import-time behaviour);
- ``data_dir``: the shared data folder, skipping the test with a reason when it is absent.

Tests slower than ~2 s on a 2-core machine carry ``@pytest.mark.slow``; ``pytest -m "not slow"`` is the
edit-test loop and CI runs everything.
"""

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("MPLBACKEND", "Agg")
_shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "GRUKIT_DATA" not in os.environ and _shared.is_dir():
    os.environ["GRUKIT_DATA"] = str(_shared)

import pytest  # noqa: E402
import torch  # noqa: E402
from support import run_cli_inprocess, run_cli_subprocess  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``grukit ARGS`` in-process: ``cli(*args) -> CliResult(code, out, err)``."""

    def run(*args: object):
        return run_cli_inprocess(capsys, monkeypatch, *args)

    return run


@pytest.fixture
def cli_subprocess():
    """Run ``grukit ARGS`` in a fresh interpreter: ``cli_subprocess(*args, cwd=, env=, timeout=)``."""
    return run_cli_subprocess


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder (``GRUKIT_DATA``); the test is skipped, with the reason, if it is missing."""
    d = os.environ.get("GRUKIT_DATA")
    if not d or not Path(d).is_dir():
        pytest.skip("shared data not found: set GRUKIT_DATA to the folder holding the data sets")
    return Path(d)
