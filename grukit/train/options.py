"""Shared typer options for every ``train`` command (docs/conventions.md):
``--data-dir --output-dir --epochs --seed --devices --num-nodes --strategy --resume``, plus
``--overwrite`` and ``--threads``; :func:`given_options` tells which ones the user typed (for
:func:`grukit.train.resumed_config`).

Use them as annotations so each command keeps its own defaults::

    from grukit.train.options import (
        DataDir,
        OutputDir,
        Epochs,
        Seed,
        Devices,
        NumNodes,
        Strategy,
        Resume,
        Overwrite,
        Threads,
    )


    @app.command()
    def train(
        data_dir: DataDir = None,
        output_dir: OutputDir = None,
        epochs: Epochs = 20,
        seed: Seed = 0,
        devices: Devices = "auto",
        num_nodes: NumNodes = 1,
        strategy: Strategy = "auto",
        resume: Resume = None,
        overwrite: Overwrite = False,
        threads: Threads = None,
    ) -> None:
        from grukit.train import fit, set_threads  # heavy imports inside the command

        set_threads(threads)

        ...
        fit(
            module,
            train_dl,
            val_dl,
            task="music",
            epochs=epochs,
            seed=seed,
            devices=devices,
            num_nodes=num_nodes,
            strategy=strategy,
            resume=resume,
            overwrite=overwrite,
            output_dir=output_dir,
        )

Only typer is imported here (every ``grukit`` invocation imports all task CLIs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="The dataset's own folder (default: $GRUKIT_DATA/<name>, then ~/.cache/grukit/data/<name>).",
        show_default=False,
    ),
]
OutputDir = Annotated[
    Path | None,
    typer.Option(
        "--output-dir",
        help="Run folder to write (default: runs/<task>-<YYYYmmdd-HHMMSS>/).",
        show_default=False,
    ),
]
Epochs = Annotated[int, typer.Option("--epochs", min=1, help="Maximum number of training epochs.")]
Seed = Annotated[
    int, typer.Option("--seed", min=0, help="Random seed (training is deterministic given it).")
]
Devices = Annotated[
    str,
    typer.Option(
        "--devices",
        help="Devices per node, passed to Lightning: a count, 'auto' or a list like '0,1'.",
    ),
]
NumNodes = Annotated[
    int, typer.Option("--num-nodes", min=1, help="Number of nodes (Lightning num_nodes).")
]
Strategy = Annotated[
    str, typer.Option("--strategy", help="Lightning strategy: auto, ddp, ddp_spawn, fsdp, ...")
]
Resume = Annotated[
    Path | None,
    typer.Option(
        "--resume",
        help="Continue a run: its folder (uses last.ckpt) or a .ckpt file.",
        show_default=False,
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace the run folder --output-dir if it already holds a run (refused otherwise).",
    ),
]
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="torch CPU threads (default: torch's own choice).",
        show_default=False,
    ),
]
Accelerator = Annotated[
    str, typer.Option("--accelerator", help="Lightning accelerator: auto, cpu, gpu, mps.")
]
Checkpoint = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        help="A run folder or a .safetensors model file (default: the task's shipped model).",
        show_default=False,
    ),
]


def _set_allow_incomplete(value: bool) -> bool:
    from .run import ALLOW_INCOMPLETE

    ALLOW_INCOMPLETE.set(bool(value))
    return value


AllowIncomplete = Annotated[
    bool,
    typer.Option(
        "--allow-incomplete",
        help="Use the model of a run that did not finish (interrupted, killed, diverged); refused "
        "otherwise.",
        callback=_set_allow_incomplete,
    ),
]


def parse_devices(devices: str | int | list[int]) -> str | int | list[int]:
    """Turn the ``--devices`` text into what ``lightning.Trainer(devices=...)`` accepts.

    Args:
        devices: ``"auto"``, a count (``"2"``, ``"-1"`` for all), or a comma list of indices (``"0,1"``);
            ints and lists pass through.

    Returns:
        ``"auto"``, an int, or a list of ints.

    Raises:
        UserInputError: anything else.

    Examples:
        >>> from grukit.train.options import parse_devices
        >>> parse_devices("auto"), parse_devices("2"), parse_devices("0,1")
        ('auto', 2, [0, 1])
    """
    if isinstance(devices, (int, list)):
        return devices
    s = str(devices).strip()
    if s == "auto":
        return s
    from ..errors import UserInputError

    try:
        if "," in s:
            out: int | list[int] = [int(p) for p in s.split(",") if p.strip()]
        else:
            out = int(s)
    except ValueError:
        raise UserInputError(
            f"--devices expects a count, 'auto' or a comma list of indices, got {devices!r}"
        ) from None
    if out == 0 or (isinstance(out, int) and out < -1) or out == []:
        raise UserInputError(
            f"--devices expects a count of at least 1 (or -1 for all, 'auto', or a list like '0,1'), "
            f"got {devices!r}"
        )
    return out


def given_options(ctx: typer.Context, rename: dict[str, str] | None = None) -> set[str]:
    """The parameters of the running command that the user set (on the command line or through the
    environment) rather than left at their defaults, renamed by ``rename`` (CLI parameter → config field,
    e.g. ``{"hidden": "hidden_size"}``). Pass it as ``given`` to :func:`grukit.train.resumed_config`;
    ``ctx`` is the command's ``typer.Context`` (declare a ``ctx: typer.Context`` parameter)."""
    rename = rename or {}
    out = set()
    for name in ctx.params:
        src = ctx.get_parameter_source(name)
        if src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP"):
            out.add(rename.get(name, name))
    return out
