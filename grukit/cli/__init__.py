"""The ``grukit`` command: ``grukit <task> <verb> [options]``.

Each recipe registers itself by having ``grukit/tasks/<task>/cli.py`` define a typer app named ``app``
(kept light: heavy imports go inside the commands). Non-task commands live in ``grukit/cli/*.py``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer

from .._version import __version__
from ..errors import UserInputError

app = typer.Typer(
    name="grukit",
    help="Gated Recurrent Units: train, evaluate and convert GRU models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"grukit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Gated Recurrent Units: train, evaluate and convert GRU models."""


def _register() -> None:
    import grukit.tasks as tasks

    for info in sorted(pkgutil.iter_modules(tasks.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        try:
            mod = importlib.import_module(f"grukit.tasks.{info.name}.cli")
        except ModuleNotFoundError as e:
            if e.name == f"grukit.tasks.{info.name}.cli":
                continue
            raise
        sub = getattr(mod, "app", None)
        if sub is not None:
            app.add_typer(sub, name=getattr(mod, "NAME", info.name))
    for name in ("convert",):  # top-level commands outside the task recipes
        try:
            mod = importlib.import_module(f"grukit.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"grukit.cli.{name}":
                continue
            raise
        mod.register(app)


_register()


def _path_message(e: OSError) -> str:
    """One line for a path the user gave that cannot be used (e.g. ``--output-dir notes.txt/run``), naming
    the path and, for a file where a folder should be, that file."""
    from pathlib import Path

    from .._io import blocking_file

    name = e.filename if e.filename is not None else ""
    if isinstance(e, NotADirectoryError) and name:
        blocker = blocking_file(Path(name))
        if blocker is not None:
            return f"{name}: {blocker} is a file, not a folder"
        return f"{name}: not a folder"
    if isinstance(e, IsADirectoryError) and name:
        return f"{name} is a folder; expected a file"
    return f"{name}: {e.strerror}" if name else str(e)


def main() -> None:
    """Console entry point: user mistakes print one line on stderr and exit 2; other failures exit 1.

    A path the user gave that cannot be used (a file where a folder should be, as in ``--output-dir
    notes.txt/run``, a folder where a file should be, no permission) is a user mistake too: one line
    naming it, exit 2; so is a full disk (``no space left on device while writing <file>``). Ctrl-C prints
    ``interrupted`` (during training: how to continue the run) and exits 130. ``--resume`` of a complete
    run prints "already complete" on stdout and exits 0. Commands print through
    ``grukit._console.stdout_console``: plain, unwrapped lines when stdout is not a terminal."""
    from .._io import DiskFullError, is_disk_full
    from ..train.run import ALLOW_INCOMPLETE, RunAlreadyComplete, RunInterrupted

    ALLOW_INCOMPLETE.set(False)  # --allow-incomplete sets it for this command only
    debug = bool(os.environ.get("GRUKIT_DEBUG"))
    try:
        # not standalone: typer would print "Aborted!" (exit 1) for an EOFError from a reader, and turn
        # Ctrl-C into a silent exit 130
        rv = app(standalone_mode=False)
    except SystemExit:
        raise
    except typer.Abort as e:
        if debug:
            raise
        cause = e.__cause__ or e.__context__
        what = type(cause).__name__ if cause is not None else "Abort"
        typer.echo(f"error: unexpected end of an input file ({what})", err=True)
        sys.exit(2)
    except RunAlreadyComplete as e:
        typer.echo(str(e))
        sys.exit(0)
    except (RunInterrupted, KeyboardInterrupt) as e:
        typer.echo(str(e) or "interrupted", err=True)
        sys.exit(130)
    except (UserInputError, FileNotFoundError) as e:
        if debug:
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except (NotADirectoryError, IsADirectoryError, PermissionError) as e:
        if debug:
            raise
        typer.echo(f"error: {_path_message(e)}", err=True)
        sys.exit(2)
    except MemoryError as e:
        if debug:
            raise
        typer.echo(f"error: out of memory{': ' + str(e) if str(e) else ''}", err=True)
        sys.exit(2)
    except Exception as e:
        show = getattr(e, "show", None)
        if callable(show) and isinstance(getattr(e, "exit_code", None), int):
            show()  # a usage error: typer's own message (exit 2)
            sys.exit(e.exit_code)  # type: ignore[attr-defined]
        if debug:
            raise
        if is_disk_full(e):
            name = getattr(e, "filename", None)
            typer.echo(f"error: {DiskFullError(name or '(a file)')}", err=True)
            sys.exit(2)
        typer.echo(
            f"error: {type(e).__name__}: {e} (set GRUKIT_DEBUG=1 for the traceback)", err=True
        )
        sys.exit(1)
    if rv == 130:  # Ctrl-C outside a training run
        typer.echo("interrupted", err=True)
    sys.exit(rv if isinstance(rv, int) else 0)
