"""The grukit console script: --version, --help, and the error contract."""

import subprocess
import sys

import pytest

import grukit


def _run(*args):
    return subprocess.run(
        [sys.executable, "-c", "from grukit.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_version_and_help():
    r = _run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"grukit {grukit.__version__}"
    r = _run("--help")
    assert r.returncode == 0 and "Usage" in r.stdout


@pytest.mark.slow
def test_unknown_command_is_usage_error():
    r = _run("no-such-command")
    assert r.returncode == 2 and "Traceback" not in r.stderr
