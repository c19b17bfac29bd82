"""The recipe contract: what every ``grukit <task>`` CLI shares, declared once, in small pieces.

A recipe's ``cli.py`` (``grukit/tasks/<task>/cli.py``) declares only what is its own: its options, how they
become its config, how it prints its results. The rest comes from here:

- :func:`recipe_app` — the recipe's typer app (help, no completion, help when called bare — or, with
  ``main_command=True``, the recipe's main command, as ``grukit forecast`` trains);
- :func:`train_command` — registers a ``train`` command (or, with ``name=None``, the app's main command)
  with the options every recipe's training shares (``--data-dir --output-dir --epochs --seed --devices
  --num-nodes --strategy --resume --overwrite --threads``, from :mod:`grukit.train.options`; ``without``
  leaves out ``--data-dir``/``--threads`` for a recipe that declares them its own way) and hands their
  values to the command as one :class:`RunOptions`;
- :data:`Progress`, :data:`JsonOut` — two more option declarations several commands share;
- :func:`json_result` — an output file checked before the work and written after it;
- :func:`check_choice`, :func:`read_lines` — the input checks of evaluate/predict commands, refusing with
  one line (``UserInputError`` → exit 2 through ``grukit.cli.main``);
- :func:`run_summary` — the tail of every train command's last line.

A recipe's train command then reads::

    app = recipe_app("Toy task: train and evaluate.")


    @train_command(app, epochs=20)
    def train(
        run: RunOptions,
        hidden: Annotated[int, typer.Option("--hidden", min=1, help="GRU hidden size.")] = 64,
        progress: Progress = True,
    ) -> None:
        \"\"\"Train the toy model.\"\"\"
        from .train import ToyConfig
        from .train import train as run_train  # heavy imports inside the command

        cfg = ToyConfig(hidden_size=hidden, epochs=run.epochs, seed=run.seed)
        rec = run_train(cfg, progress=progress, given=run.given({"hidden": "hidden_size"}), **run.fit_kwargs())
        typer.echo(f"loss {rec['model']['loss']:.3f}; {run_summary(rec)}")

Only typer is imported here (every ``grukit`` invocation imports every recipe's CLI). The training side
of the contract — the set-up every recipe's ``train(cfg, ...)`` shares — is
:class:`grukit.train.recipe_run.RecipeRun`.
"""

from __future__ import annotations

import inspect
import os
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from .options import (
    DataDir,
    Devices,
    Epochs,
    NumNodes,
    OutputDir,
    Overwrite,
    Resume,
    Seed,
    Strategy,
    Threads,
    given_options,
)

Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")]
JsonOut = Annotated[
    Path | None,
    typer.Option("--json", help="Also write the result to this JSON file.", show_default=False),
]

#: What a resumed train command does, appended to every train command's help.
RESUME_HELP = (
    "With --resume RUN the run continues with the options in RUN/config.json (stored options win unless "
    "given; --resume RUN alone continues the run as started): a given --epochs is the new total, another "
    "given option that differs from the stored run is refused; a complete run is left as it is."
)


def recipe_app(help: str, *, main_command: bool = False) -> typer.Typer:
    """The typer app of one recipe (``grukit <task> ...``); ``grukit.cli`` registers it by the module's
    ``NAME``. Errors are left to ``grukit.cli.main`` (one line, exit 2 for user mistakes).

    Bare ``grukit <task>`` shows the help, unless ``main_command``: then it runs the recipe's main command
    (``grukit forecast`` trains and forecasts; register it with ``train_command(app, name=None)``)."""
    return typer.Typer(
        help=help,
        no_args_is_help=not main_command,
        invoke_without_command=main_command,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


@dataclass(frozen=True)
class RunOptions:
    """The values of the options every train command shares, and which options the user typed.

    ``typed`` names the command's parameters (the shared ones and the recipe's own) that were set on the
    command line or through the environment rather than left at their defaults; :meth:`given` renames them
    to config fields for :func:`grukit.train.resumed_config`, which refuses a typed option that differs
    from a resumed run's.
    """

    data_dir: Path | None
    output_dir: Path | None
    epochs: int
    seed: int
    devices: str
    num_nodes: int
    strategy: str
    resume: Path | None
    overwrite: bool
    threads: int | None
    typed: frozenset[str] = frozenset()

    def given(self, rename: Mapping[str, str] | None = None) -> set[str]:
        """The typed parameters as config fields (CLI parameter → field, e.g. ``{"hidden": "hidden_size"}``).

        Example:
            >>> from grukit.train.recipe import RunOptions
            >>> run = RunOptions(
            ...     None, None, 3, 0, "auto", 1, "auto", None, False, None, frozenset({"hidden"})
            ... )
            >>> run.given({"hidden": "hidden_size"})
            {'hidden_size'}
        """
        rename = rename or {}
        return {rename.get(name, name) for name in self.typed}

    def fit_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every recipe's ``train(cfg, ...)`` takes from the shared options (epochs and
        seed go into the recipe's config instead)."""
        return {
            "data_dir": self.data_dir,
            "output_dir": self.output_dir,
            "devices": self.devices,
            "num_nodes": self.num_nodes,
            "strategy": self.strategy,
            "resume": self.resume,
            "threads": self.threads,
            "overwrite": self.overwrite,
        }


def _shared_parameters(epochs: int, devices: str = "auto") -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    shared: list[tuple[str, Any, Any]] = [
        ("data_dir", DataDir, None),
        ("output_dir", OutputDir, None),
        ("epochs", Epochs, epochs),
        ("seed", Seed, 0),
        ("devices", Devices, devices),
        ("num_nodes", NumNodes, 1),
        ("strategy", Strategy, "auto"),
        ("resume", Resume, None),
        ("overwrite", Overwrite, False),
        ("threads", Threads, None),
    ]
    return [inspect.Parameter(name, kw, default=d, annotation=a) for name, a, d in shared]


#: The parameter names :func:`train_command` adds to every train command.
SHARED_TRAIN_PARAMETERS: tuple[str, ...] = tuple(p.name for p in _shared_parameters(1))

F = TypeVar("F", bound=Callable[..., Any])


#: The shared options a recipe may leave out (:func:`train_command`'s ``without``) and declare its own way.
OPTIONAL_TRAIN_PARAMETERS = ("data_dir", "threads")


def train_command(
    app: typer.Typer,
    *,
    epochs: int,
    name: str | None = "train",
    devices: str = "auto",
    without: typing.Collection[str] = (),
) -> Callable[[F], F]:
    """Register the decorated function as ``app``'s train command, with the shared options in front of its own.

    The function's first parameter is ``run: RunOptions`` (the shared options' values); the rest are the
    recipe's own typer parameters. Its docstring is the command's help, followed by :data:`RESUME_HELP`.

    Args:
        app: the recipe's typer app.
        epochs: the recipe's default for ``--epochs``.
        name: the command's name; ``None`` makes it the app's main command, run by ``grukit <task>`` with
            no verb (the app made with ``recipe_app(..., main_command=True)``; the app's help is followed by
            :data:`RESUME_HELP`).
        devices: the recipe's default for ``--devices``.
        without: shared options of :data:`OPTIONAL_TRAIN_PARAMETERS` the recipe does not take (their
            :class:`RunOptions` fields are None); it may declare its own under the same name.

    Returns:
        A decorator that registers the command and returns the function unchanged.

    Raises:
        TypeError: the function does not start with ``run``, redeclares a shared option, or ``without``
            names one that cannot be left out.
    """
    left_out = set(without)
    if not left_out <= set(OPTIONAL_TRAIN_PARAMETERS):
        raise TypeError(
            f"without: only {OPTIONAL_TRAIN_PARAMETERS} can be left out, got {sorted(left_out)}"
        )

    def decorate(func: F) -> F:
        params = list(inspect.signature(func).parameters.values())
        if not params or params[0].name != "run":
            raise TypeError(f"{func.__qualname__}: the first parameter must be 'run: RunOptions'")
        hints = typing.get_type_hints(func, include_extras=True)
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name])
            for p in params[1:]
        ]
        shared_params = [p for p in _shared_parameters(epochs, devices) if p.name not in left_out]
        clash = sorted({p.name for p in own} & {*(p.name for p in shared_params), "ctx"})
        if clash:
            raise TypeError(f"{func.__qualname__}: redeclares the shared option(s) {clash}")
        ctx = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        signature = inspect.Signature([ctx, *shared_params, *own])

        def command(ctx: typer.Context, **values: Any) -> Any:
            if ctx.invoked_subcommand is not None:  # a main command's app running one of its verbs
                return None
            shared: dict[str, Any] = dict.fromkeys(left_out)  # left out: None
            shared.update((p.name, values.pop(p.name)) for p in shared_params)
            run = RunOptions(**shared, typed=frozenset(given_options(ctx)))
            return func(run, **values)

        command.__signature__ = signature  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        command.__name__, command.__qualname__ = func.__name__, func.__qualname__
        command.__module__ = func.__module__
        doc = inspect.cleandoc(func.__doc__ or "")
        command.__doc__ = f"{doc}\n\n{RESUME_HELP}" if doc else RESUME_HELP
        if name is None:
            app.callback(
                invoke_without_command=True, help=f"{app.info.help or doc}\n\n{RESUME_HELP}"
            )(command)
        else:
            app.command(name)(command)
        return func

    return decorate


def json_result(
    path: os.PathLike[str] | str | None, option: str = "--json"
) -> Callable[[Any], None]:
    """Check an output file now (before a long evaluation) and return the function that writes the result
    there as JSON later (atomically; a no-op when ``path`` is None).

    Raises:
        UserInputError: the path cannot be written (a folder, a file where a folder should be, ...).

    Example:
        >>> import json, tempfile
        >>> from grukit.train.recipe import json_result
        >>> path = tempfile.mkdtemp() + "/out/result.json"
        >>> write = json_result(path)  # checked here
        >>> write({"accuracy": 0.5})  # written here
        >>> json.load(open(path))
        {'accuracy': 0.5}
    """
    if path is None:
        return lambda result: None
    from .._io import check_output_file

    check_output_file(path, option, parents=True)

    def write(result: Any) -> None:
        from .run import write_json

        write_json(path, result)

    return write


def check_choice(value: str, choices: typing.Iterable[str], option: str) -> str:
    """``value`` if it is one of ``choices``, else a one-line refusal naming them.

    Example:
        >>> from grukit.train.recipe import check_choice
        >>> check_choice("test", ("valid", "test"), "--split")
        'test'
    """
    allowed = list(choices)
    if value not in allowed:
        from ..errors import UserInputError

        raise UserInputError(f"{option} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def read_lines(
    path: os.PathLike[str] | str, option: str = "--file", what: str = "read", stdin: bool = False
) -> list[str]:
    """The lines of a UTF-8 input file (with ``stdin``, ``-`` reads standard input), refusing a file without
    one non-empty line. Lines end at ``\n`` (or ``\r\n``) only: U+0085, U+2028 and the other characters
    ``str.splitlines`` breaks at stay inside a line (``grukit._io.split_lines``). Empty lines are kept, so line i of an answer can stand for line i of the input.

    Raises:
        UserInputError: missing, a folder, not UTF-8, or no non-empty line (``"{option} {path}: no non-empty
            lines to {what}"``).
    """
    from .._io import read_text_file, split_lines

    if stdin and str(path) == "-":
        lines = split_lines(sys.stdin.read())
    else:
        lines = split_lines(read_text_file(path, option))
    if not any(line.strip() for line in lines):
        from ..errors import UserInputError

        raise UserInputError(f"{option} {path}: no non-empty lines to {what}")
    return lines


def run_summary(rec: Mapping[str, Any]) -> str:
    """``"best epoch N; run folder: PATH"`` from a recipe's training record (its ``best_epoch`` and ``run``)."""
    return f"best epoch {rec['best_epoch']}; run folder: {rec['run']}"


__all__ = [
    "OPTIONAL_TRAIN_PARAMETERS",
    "RESUME_HELP",
    "SHARED_TRAIN_PARAMETERS",
    "JsonOut",
    "Progress",
    "RunOptions",
    "check_choice",
    "json_result",
    "read_lines",
    "recipe_app",
    "run_summary",
    "train_command",
]
