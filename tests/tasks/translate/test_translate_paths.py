"""`grukit translate predict --show-attention` and `evaluate --output` refuse unusable paths up front,
naming the path given (no translation printed, no temporary file named, nothing left behind)."""

import os

import pytest


@pytest.fixture
def translate(cli, monkeypatch, tmp_path):
    """``grukit translate ARGS`` in-process, run from tmp_path (the paths below are relative to it)."""
    monkeypatch.chdir(tmp_path)
    return lambda *args: cli("translate", *args)


@pytest.mark.slow
def test_bad_show_attention_path(tmp_path, translate):
    (tmp_path / "notes.txt").write_text("x")
    for target, match in [
        (
            "notes.txt/att.png",
            "--show-attention notes.txt/att.png: notes.txt is a file, not a folder",
        ),
        ("/proc/att.png", "--show-attention /proc/att.png"),
        ("missing/att.png", "folder missing does not exist"),
    ]:
        r = translate("predict", "I am cold.", "--show-attention", target)
        assert r.code == 2 and r.out == "", (target, r.out, r.err)
        assert match in r.err and ".tmp" not in r.err and "Traceback" not in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.slow
def test_show_attention_writes_png_with_open_mode(tmp_path, translate):
    r = translate("predict", "I am cold.", "--show-attention", "att.png")
    assert r.code == 0, r.err
    assert (tmp_path / "att.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "att.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_folder_given_as_file(tmp_path, translate):
    r = translate("predict", "--file", tmp_path)
    assert r.code == 2 and "is a folder" in r.err, r.err


def test_evaluate_output_under_a_file_refused_before_decoding(tmp_path, translate):
    (tmp_path / "notes.txt").write_text("x")
    r = translate("evaluate", "--limit", "5", "--output", "notes.txt/scores.json")
    assert r.code == 2 and "notes.txt is a file, not a folder" in r.err, r.err
