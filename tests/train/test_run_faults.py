"""Runs that survive faults (issue 27), through the real CLI: the tiniest music run stands in for every
recipe (the per-recipe rows are checks of the recipe contract, test_recipe_contract.py). In-process where
possible; subprocesses for Ctrl-C (SIGINT), kill -9 and the full disk (a small tmpfs in a private mount
namespace)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support import files_under, one_line_error

import grukit
from grukit.errors import UserInputError
from grukit.train import RunDir

TINY = [
    *("--hidden", "8", "--max-train-sequences", "4", "--batch-size", "4"),
    *("--threads", "1", "--no-progress"),
]


def _train(*extra: object) -> list[object]:
    return ["music", "train", *TINY, *extra]


def _status(run: Path) -> str:
    return json.loads((run / "config.json").read_text())["status"]


def _snapshot(run: Path) -> dict:
    """Every file's bytes and mtime; the lock file (rewritten by whoever claims the folder) left out."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in run.iterdir()
        if p.name != ".grukit.lock"
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A complete one-epoch music run (made once; tests copy it before changing anything)."""
    from support import run_cli_inprocess

    out = tmp_path_factory.mktemp("faults") / "run"
    mp = pytest.MonkeyPatch()
    try:

        class _Cap:  # run_cli_inprocess needs capsys; a module fixture has none
            def readouterr(self):
                return type("C", (), {"out": "", "err": ""})()

        r = run_cli_inprocess(_Cap(), mp, *_train("--epochs", "1", "--output-dir", out))
    finally:
        mp.undo()
    assert r.code == 0
    return out


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def _default_sigint() -> None:
    """In the child before exec: SIGINT as a terminal's Ctrl-C gives it. A test run started as a background
    job of a non-interactive shell (or under nohup-style launchers) inherits SIGINT *ignored*, which exec
    keeps, and the Ctrl-C test would then watch a run that never sees its SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _popen(*args: object, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from grukit.cli import main; main()", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {path.name} appeared: {proc.stderr.read()}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.01)


# ---------------------------------------------------------------- item 7: raw exceptions -> one line
@pytest.mark.slow
@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--devices", "0"], "--devices expects a count of at least 1"),
        (["--strategy", "bogus"], "--strategy bogus"),
        (["--threads", "100000"], "--threads 100000"),
        (["--hidden", "200000"], "--hidden 200000 --layers 1: the model needs more memory"),
        (["--layers", "100000"], "--hidden 256 --layers 100000: the model needs more memory"),
    ],
)
def test_bad_training_options_are_one_line(extra, needle, cli, tmp_path):
    out = tmp_path / "run"
    args = ["music", "train", "--max-train-sequences", "4", "--no-progress", "--epochs", "1"]
    r = cli(
        *args, "--output-dir", out, *(extra if "--threads" in extra else ["--threads", "1", *extra])
    )
    one_line_error(r, needle)
    assert not out.exists()  # nothing left behind


def _pickled(path: Path) -> None:  # a pickle that names a class weights_only loading refuses
    torch.save({"state_dict": {}, "where": Path("x")}, path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "not a readable"),
        (_pickled, "not a readable"),
        # 4 KB of garbage over the tensor data (past the zip's first entry): caught by the checksum
        (
            lambda p: p.write_bytes(
                p.read_bytes()[:60000] + os.urandom(4096) + p.read_bytes()[64096:]
            ),
            "last.ckpt",
        ),
    ],
    ids=["empty", "truncated", "pickled", "garbage"],
)
def test_a_damaged_checkpoint_is_refused_before_anything_is_touched(
    damage, needle, finished, cli, tmp_path
):
    run = _copy(finished, tmp_path / "run")
    damage(run / "last.ckpt")
    before = _snapshot(run)
    r = cli("music", "train", "--resume", run, "--epochs", "2", "--no-progress")
    one_line_error(r, "--resume", needle)
    assert _snapshot(run) == before  # still the complete run it was


# ---------------------------------------------------------------- item 6: non-finite models
def test_a_model_file_with_nan_weights_is_refused(finished, cli, tmp_path):
    model = grukit.load(finished / "model.safetensors")
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    path = grukit.save(model, tmp_path / "nan.safetensors", task="music")
    r = cli("music", "evaluate", "--checkpoint", path, "--split", "valid")
    one_line_error(r, str(path), "NaN")


# ---------------------------------------------------------------- item 4: incomplete runs are not trusted
@pytest.mark.slow
def test_kill_9_leaves_a_run_that_predict_refuses_and_resume_finishes_bit_identically(
    cli, tmp_path
):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    args = ["--epochs", "4", "--max-train-sequences", "8"]
    r = cli(*_train(*args, "--output-dir", whole))
    assert r.code == 0, r.err[-2000:]

    proc = _popen(*_train(*args, "--output-dir", killed), cwd=tmp_path)
    _wait_for(killed / "last.ckpt", proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL
    assert _status(killed) == "running"  # never marked complete
    assert not (killed / "metrics.json").exists()
    assert not [f for f in files_under(killed) if ".tmp-" in f]  # no half-written file left

    one_line_error(cli("music", "evaluate", "--checkpoint", killed), "incomplete run", str(killed))
    r = cli(
        "music", "generate", "--checkpoint", killed, "--out", tmp_path / "s.mid", "--steps", "4"
    )
    one_line_error(r, "incomplete run", "--allow-incomplete")
    assert not (tmp_path / "s.mid").exists()
    r = cli("music", "evaluate", "--checkpoint", killed, "--allow-incomplete", "--split", "valid")
    assert r.code == 0, r.err[-2000:]

    # the kernel dropped the killed run's claim: --resume RUN alone continues it at once
    r = cli("music", "train", "--resume", killed, "--no-progress")
    assert r.code == 0, r.err[-2000:]
    assert _status(killed) == "complete"
    assert (killed / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    assert r.code == 0 and cli("music", "evaluate", "--checkpoint", killed).code == 0


# ---------------------------------------------------------------- item 8: Ctrl-C
@pytest.mark.slow
def test_ctrl_c_exits_130_and_says_how_to_continue(tmp_path):
    out = tmp_path / "run"
    proc = _popen(*_train("--epochs", "200", "--output-dir", out), cwd=tmp_path)
    _wait_for(out / "last.ckpt", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1] == f"interrupted; continue with `grukit music train --resume {out}`"
    assert "Traceback" not in err
    assert _status(out) == "interrupted"
    assert (out / "last.ckpt").is_file() and not (out / "metrics.json").exists()


# ---------------------------------------------------------------- item 3: one folder, one run
def _claim_and_write(out: str, seed: int, barrier, results) -> None:
    """What a recipe does: check --output-dir first, read its data, then open the run and write files."""
    from grukit.train import check_output_dir

    barrier.wait()
    try:
        check_output_dir(out)
        time.sleep(0.02)  # loading data, building the model
        run = RunDir.create("race", output_dir=out)
    except UserInputError as e:
        results.put(("refused", str(e)))
        return
    run.write_config({"seed": seed})
    time.sleep(0.01)  # the window in which the old check let a second run in
    (run.path / "model.bin").write_text(str(seed))
    run.complete()
    results.put(("ran", seed))


@pytest.mark.slow
def test_two_runs_on_one_folder_never_mix(tmp_path):
    """30 pairs of processes start together on one --output-dir: exactly one of each pair runs, and the
    folder holds that run's files only. (Without the claim — the old check-then-create — both get in on
    most rounds: checked by replacing RunDir.claim with a no-op.)"""
    ctx = multiprocessing.get_context("fork")
    for i in range(30):
        out = tmp_path / f"run{i}"
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [
            ctx.Process(target=_claim_and_write, args=(str(out), s, barrier, results))
            for s in (0, 1)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        got = sorted(results.get(timeout=5) for _ in procs)
        kinds = [k for k, _ in got]
        assert kinds == ["ran", "refused"], got
        msg = got[1][1]
        assert "in use by another run" in msg or "already holds files" in msg, msg
        seed = json.loads((out / "config.json").read_text())["seed"]
        assert (out / "model.bin").read_text() == str(seed) == str(got[0][1])


def test_a_held_folder_is_refused_in_one_line(cli, tmp_path):
    out = tmp_path / "run"
    holder = RunDir.create("music", output_dir=out)  # another run, still writing
    try:
        r = cli(*_train("--epochs", "1", "--output-dir", out, "--overwrite"))
        one_line_error(r, str(out), "in use by another run", f"pid {os.getpid()}")
    finally:
        holder.release()
    assert files_under(out) == [".grukit.lock"]


# ---------------------------------------------------------------- item 5: a full disk
def _tmpfs_works() -> str | None:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return "needs Linux and unshare(1)"
    r = subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k t /mnt",
        ],
        capture_output=True,
        text=True,
    )
    return None if r.returncode == 0 else f"cannot mount a tmpfs in a private namespace: {r.stderr}"


@pytest.mark.slow
def test_a_full_disk_is_one_line_naming_the_final_file_and_leaves_no_partial_file(tmp_path):
    why = _tmpfs_works()
    if why:
        pytest.skip(why)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out = mnt / "run"
    grukit_cmd = " ".join(
        [
            sys.executable,
            "-c",
            "'from grukit.cli import main; main()'",
            *map(str, _train("--epochs", "3")),
        ]
    )
    # 256 KB: epoch 0's files fit (model 44 KB, last.ckpt 142 KB); epoch 1's new last.ckpt, written
    # beside the old one before the rename, does not
    script = (
        f"mount -t tmpfs -o size=256k tmpfs {mnt} && "
        f"{grukit_cmd} --output-dir {out} 2>{tmp_path}/err; echo rc=$?; "
        f"find {out} -type f | sort; cat {out}/config.json; "
        f'{sys.executable} -c \'import torch; torch.load("{out}/last.ckpt", weights_only=True); print("ckpt-ok")\''
    )
    r = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
    )
    err = (tmp_path / "err").read_text()
    assert "rc=2" in r.stdout, (r.stdout, err[-2000:])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [f"error: no space left on device while writing {out}/last.ckpt"], err[-2000:]
    assert ".tmp-" not in r.stdout  # no temporary file left
    assert "ckpt-ok" in r.stdout  # the last.ckpt of epoch 0 is whole: the run can be resumed
    cfg = json.loads(r.stdout[r.stdout.index("{") : r.stdout.rindex("}") + 1])
    assert cfg["status"] == "failed"


@pytest.mark.slow
def test_a_refused_option_leaves_a_resumed_run_as_it_was(finished, cli, tmp_path):
    run = _copy(finished, tmp_path / "run")
    before = _snapshot(run)
    r = cli(
        "music", "train", "--resume", run, "--epochs", "2", "--strategy", "bogus", "--no-progress"
    )
    one_line_error(r, "--strategy bogus")
    assert _snapshot(run) == before and _status(run) == "complete"
