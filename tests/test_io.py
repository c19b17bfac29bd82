"""grukit._io: outputs are all-or-nothing, get the mode open() gives (tested under umask 022 and 077), and
bad paths are refused naming the path the user gave, never a temporary file."""

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from support import one_line_error

import grukit
from grukit._io import (
    atomic_path,
    atomic_paths,
    check_input_file,
    check_output_dir,
    check_output_file,
    default_mode,
    write_text,
)
from grukit.errors import UserInputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_default_mode_follows_the_umask():
    old = os.umask(0o077)
    try:
        assert default_mode() == 0o600
        os.umask(0o022)
        assert default_mode() == 0o644
        # the oracle: what a plain open() creates under the same umask
        probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"grukit-umask-probe-{os.getpid()}"
        with open(probe, "w"):
            pass
        try:
            assert _mode(probe) == default_mode()
        finally:
            probe.unlink()
    finally:
        os.umask(old)


def test_atomic_path_mode_and_nothing_left_on_error(tmp_path, umask022):
    write_text(tmp_path / "a.txt", "x")
    assert _mode(tmp_path / "a.txt") == 0o644
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with pytest.raises(RuntimeError):
        with atomic_paths([tmp_path / "c.mid", tmp_path / "c.png"]) as (m, p):
            m.write_bytes(b"1")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_bad_output_paths_name_the_real_path(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserInputError, match=r"--out .*notes\.txt/x\.mid: .*notes\.txt is a file"):
        check_output_file(tmp_path / "notes.txt" / "x.mid", "--out")
    with pytest.raises(UserInputError, match="is a folder; expected a file name"):
        check_output_file(tmp_path, "--json")
    with pytest.raises(UserInputError, match="does not exist"):
        check_output_file(tmp_path / "nope" / "x.png")
    check_output_file(tmp_path / "nope" / "deeper" / "x.json", parents=True)  # will be created
    with pytest.raises(UserInputError, match=r"notes\.txt is a file, not a folder"):
        check_output_dir(tmp_path / "notes.txt" / "run")
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(UserInputError, match="Permission denied") as e:
            with atomic_path(locked / "x.png", "--show-attention"):
                pass
        assert ".tmp" not in str(e.value)


def test_unwritable_folder_message_has_no_temp_name():
    """/proc refuses new files even for root: the message names the requested file, not .tmp-*."""
    with pytest.raises(UserInputError) as e:
        with atomic_path("/proc/song.mid", "--out"):
            pass
    assert "/proc/song.mid" in str(e.value) and ".tmp" not in str(e.value)


def test_input_checks(tmp_path):
    with pytest.raises(UserInputError, match="is a folder, not a file"):
        check_input_file(tmp_path, "--file")
    with pytest.raises(UserInputError, match="no such file"):
        check_input_file(tmp_path / "x.txt", "--file")


def test_every_writer_gives_the_open_mode(tmp_path, umask022):
    """Model files, JSON, PNG plots, ONNX, MIDI+PNG: all 0644 under umask 022 (mkstemp alone gives 0600)."""
    from grukit.tasks.music.generate import generate_to_files
    from grukit.tasks.music.model import MusicGRU
    from grukit.train.plots import plot_history
    from grukit.train.run import write_json

    out = {
        "model": grukit.save(grukit.GRU(2, 3), tmp_path / "m.safetensors"),
        "json": write_json(tmp_path / "r.json", {"a": 1}),
        "png": plot_history(
            [{"epoch": 0, "train_loss": 1.0}, {"epoch": 1, "train_loss": 0.5}],
            tmp_path / "loss.png",
        ),
        "onnx": grukit.export_onnx(grukit.GRU(2, 3), tmp_path / "m.onnx"),
    }
    torch.manual_seed(0)
    res = generate_to_files(MusicGRU(hidden_size=4), steps=4, out=tmp_path / "song.mid")
    out["midi"], out["roll_png"] = res["midi"], res["png"]
    for name, p in out.items():
        assert _mode(Path(p)) == 0o644, name
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}


def test_output_dir_under_a_file_is_one_clean_line(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    r = cli("music", "train", "--dataset", "jsb", "--epochs", "1", "--output-dir", "file.txt/run")
    line = one_line_error(r, "file.txt/run", "file.txt is a file, not a folder")
    assert line.startswith("error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_music_generate_bad_out_names_the_out_path(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("music", "generate", "--steps", "4", "--out", "/proc/song.mid")
    assert r.out == ""
    line = one_line_error(r, "--out /proc/song.mid")
    assert ".tmp" not in line
    (tmp_path / "notes.txt").write_text("x")
    r = cli("music", "generate", "--steps", "4", "--out", "notes.txt/song.mid")
    one_line_error(r, "notes.txt is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# ---------------------------------------------------------------- issue 27: lines, fingerprints, full disks
def test_split_lines_breaks_at_newline_only():
    from grukit._io import split_lines

    text = "a\u0085b\tpos\r\nc\u2028d\x0ce\tneg\n\nlast"
    assert split_lines(text) == ["a\u0085b\tpos", "c\u2028d\x0ce\tneg", "", "last"]
    assert text.splitlines() != split_lines(text)  # what the readers used before
    assert split_lines("x\n") == ["x"] and split_lines("") == []


def test_sentiment_evaluate_reads_a_sentence_holding_nel(tmp_path, cli):
    f = tmp_path / "s.tsv"
    f.write_text("a fine\u0085 film\t1\nawful , dull\u2028 and long\t0\n", encoding="utf-8")
    r = cli("sentiment", "evaluate", "--file", f)
    assert r.code == 0, r.err[-2000:]
    assert "over 2 sentences" in r.out, (
        r.out
    )  # str.splitlines would have made 4 lines, 2 of them unlabelled


def test_fingerprint_is_sha256sum_and_covers_a_folder(tmp_path):
    import hashlib

    from grukit._io import fingerprint

    f = tmp_path / "d" / "a.csv"
    f.parent.mkdir()
    f.write_bytes(b"t,y\n1,2\n")
    assert fingerprint(f)["sha256"] == hashlib.sha256(b"t,y\n1,2\n").hexdigest()
    before = fingerprint(f.parent)
    (f.parent / ".cache").write_text("ignored")  # hidden files are not data
    assert fingerprint(f.parent) == before
    f.write_bytes(b"t,y\n1,200\n")
    assert fingerprint(f.parent)["sha256"] != before["sha256"]


def test_disk_full_names_the_final_path(tmp_path, monkeypatch):
    import errno

    from grukit._io import DiskFullError, write_text

    real_replace = os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(src))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(DiskFullError) as e:
        write_text(tmp_path / "out.json", "{}")
    monkeypatch.setattr(os, "replace", real_replace)
    assert str(e.value) == f"no space left on device while writing {tmp_path / 'out.json'}"
    assert os.listdir(tmp_path) == []  # the temporary file is gone too
