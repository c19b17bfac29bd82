"""Progress bars for long commands: rich bars on stderr, shown only when stderr is a terminal.

Library functions stay free of UI: they take an optional ``progress`` callback ``advance(n)`` and call it as
work gets done; a command wraps the call in :func:`bar`, which hands out such a callback (a no-op when the
bar is off, e.g. when stderr is piped to a file or in tests).

Example:
    >>> from grukit._progress import bar
    >>> with bar(3, "demo", enabled=False) as advance:
    ...     for _ in range(3):
    ...         advance(1)
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

Advance = Callable[[int], None]


def _noop(n: int = 1) -> None:
    return None


def enabled_default() -> bool:
    """Bars are on when stderr is a terminal, unless ``GRUKIT_NO_PROGRESS`` is set."""
    if os.environ.get("GRUKIT_NO_PROGRESS"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def bar(total: int | None, description: str, enabled: bool | None = None) -> Iterator[Advance]:
    """A rich progress bar on stderr for ``total`` units of work; yields ``advance(n)``.

    ``enabled=None`` follows :func:`enabled_default`. The bar disappears when the block ends, so the
    command's own output (on stdout) is all that stays on the screen.
    """
    if not (enabled_default() if enabled is None else enabled):
        yield _noop
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            progress.advance(task, n)

        yield advance


__all__ = ["Advance", "bar", "enabled_default"]
