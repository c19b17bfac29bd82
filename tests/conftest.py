"""Test-wide settings: Keras on its torch backend, the shared data sets, a fixed seed."""

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("MPLBACKEND", "Agg")
_shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "GRUKIT_DATA" not in os.environ and _shared.is_dir():
    os.environ["GRUKIT_DATA"] = str(_shared)

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
