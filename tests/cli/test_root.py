"""The grukit console script: --version, --help, and the error contract."""

import pytest

import grukit


@pytest.mark.slow
def test_version_and_help(cli, cli_subprocess):
    r = cli_subprocess(
        "--version", timeout=120
    )  # once in a fresh interpreter: the real console path
    assert r.code == 0 and r.out.strip() == f"grukit {grukit.__version__}"
    r = cli("--help")
    assert r.code == 0 and "Usage" in r.out


def test_unknown_command_is_usage_error(cli):
    r = cli("no-such-command")
    assert r.code == 2 and "Traceback" not in r.err
