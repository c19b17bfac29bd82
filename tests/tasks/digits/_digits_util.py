"""Helpers shared by the digits tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from grukit.datasets import find_data_dir


def fsdd_dir() -> Path:
    try:
        return find_data_dir("fsdd")
    except FileNotFoundError:
        pytest.skip("FSDD data not found (set GRUKIT_DATA)")


def fsdd_file(name: str) -> Path:
    return fsdd_dir() / "recordings" / name


def write_wav(path: Path, y: np.ndarray, sr: int = 8000) -> Path:
    import soundfile as sf

    sf.write(str(path), np.asarray(y, dtype=np.float32), sr, subtype="PCM_16")
    return path
