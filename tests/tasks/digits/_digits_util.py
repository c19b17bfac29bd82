"""Helpers shared by the digits tests."""

from __future__ import annotations

import os
import sys
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


def run_cli(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """Run ``grukit ARGS`` in-process through the console entry point; (exit code, stdout, stderr)."""
    from grukit.cli import main

    monkeypatch.setattr(sys, "argv", ["grukit", *map(os.fspath, args)])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err
