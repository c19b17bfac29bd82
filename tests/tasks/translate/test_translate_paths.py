"""`grukit translate predict --show-attention` and `evaluate --output` refuse unusable paths up front,
naming the path given (no translation printed, no temporary file named, nothing left behind)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", "from grukit.cli import main; main()", "translate", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.slow
def test_bad_show_attention_path(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for target, match in [
        (
            "notes.txt/att.png",
            "--show-attention notes.txt/att.png: notes.txt is a file, not a folder",
        ),
        ("/proc/att.png", "--show-attention /proc/att.png"),
        ("missing/att.png", "folder missing does not exist"),
    ]:
        r = _cli("predict", "I am cold.", "--show-attention", target, cwd=tmp_path)
        assert r.returncode == 2 and r.stdout == "", (target, r.stdout, r.stderr)
        assert match in r.stderr and ".tmp" not in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.slow
def test_show_attention_writes_png_with_open_mode(tmp_path):
    r = _cli("predict", "I am cold.", "--show-attention", "att.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "att.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "att.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_folder_given_as_file(tmp_path):
    r = _cli("predict", "--file", tmp_path, cwd=tmp_path)
    assert r.returncode == 2 and "is a folder" in r.stderr, r.stderr


def test_evaluate_output_under_a_file_refused_before_decoding(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    r = _cli("evaluate", "--limit", "5", "--output", "notes.txt/scores.json", cwd=tmp_path)
    assert r.returncode == 2 and "notes.txt is a file, not a folder" in r.stderr, r.stderr
