"""The rich console for a command's stdout: styled and wrapped to the terminal on a terminal; plain,
unwrapped lines when stdout is a pipe or a file.

Without a terminal rich assumes 80 columns and breaks long sentences and paths mid-word; output that goes
to a file or another program should keep each line whole. Light module (rich is imported on use).

Example:
    >>> from grukit._console import stdout_console
    >>> stdout_console().print("one line, however long")  # doctest: +SKIP
"""

from __future__ import annotations

import sys

#: The width a console gets when stdout is not a terminal: lines are never wrapped below it.
PIPE_WIDTH = 100_000


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def stdout_console(**kwargs):
    """A ``rich.console.Console`` on stdout: on a terminal as rich makes it; otherwise without colours,
    soft-wrapped (no line breaks added) and wide enough that tables are never squeezed."""
    from rich.console import Console

    kwargs.setdefault("highlight", False)
    if not stdout_is_terminal():
        kwargs.setdefault("soft_wrap", True)
        kwargs.setdefault("width", PIPE_WIDTH)
        kwargs.setdefault("no_color", True)
    return Console(**kwargs)


__all__ = ["PIPE_WIDTH", "stdout_console", "stdout_is_terminal"]
