"""grukit._progress: bars only on a terminal (stderr), never on stdout; callbacks count the work."""

import io
import sys

from grukit import _progress


class _TTY(io.StringIO):
    def isatty(self):
        return True


def test_off_when_stderr_is_not_a_terminal(capsys):
    assert not _progress.enabled_default()  # pytest captures stderr: not a terminal
    with _progress.bar(10, "work") as advance:
        for _ in range(10):
            advance(1)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_on_a_terminal_draws_on_stderr_only(monkeypatch, capsys):
    fake = _TTY()
    monkeypatch.setattr(sys, "stderr", fake)
    monkeypatch.delenv("GRUKIT_NO_PROGRESS", raising=False)
    assert _progress.enabled_default()
    with _progress.bar(4, "scoring characters") as advance:
        advance(2)
        advance(2)
    assert "scoring characters" in fake.getvalue()
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("GRUKIT_NO_PROGRESS", "1")
    assert not _progress.enabled_default()
