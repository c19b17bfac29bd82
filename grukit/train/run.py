"""Run folders (docs/conventions.md): ``runs/<task>-<YYYYmmdd-HHMMSS>/`` holding ``model.safetensors`` (best on
validation), ``config.json``, ``metrics.json``, ``log.csv``, ``*.png`` plots and ``last.ckpt`` (resume only).

Light module (no torch/lightning import) so CLIs can use it at import time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from .._io import default_mode
from .._version import __version__
from ..errors import UserInputError

MODEL_FILE = "model.safetensors"
LAST_CKPT = "last.ckpt"
_C = TypeVar("_C")
_M = TypeVar("_M")


#: Files whose presence marks a folder as a grukit run folder (``--overwrite`` empties only those).
RUN_FILES = (MODEL_FILE, "config.json", LAST_CKPT, "log.csv", "metrics.json", "forecast.csv")


def _is_launching_rank() -> bool:
    """True in the process the user started (global rank 0); False in ranks Lightning launched for DDP,
    which must neither check nor empty the folder rank 0 has already prepared."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def _check_folder_path(path: Path, what: str) -> None:
    """Refuse ``path`` in one line if it, or the nearest existing folder above it, is not a folder."""
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{what} {path} exists and is not a folder")
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise UserInputError(
                    f"{what} {path}: {parent} is a file, not a folder; expected a folder path"
                )
            return


def _empty_folder(path: Path) -> None:
    for p in path.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _jsonable(obj: Any) -> Any:
    """Plain-JSON copy of ``obj``: Paths → str, dataclasses → dict, NaN/inf → None, numpy/torch scalars → float."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        try:
            obj = obj.item()
        except (ValueError, RuntimeError):
            return str(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, int):
        return obj
    return str(obj)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (a temporary file renamed into place).

    Values JSON cannot hold are converted: dataclasses to dicts, paths and other objects to strings,
    NumPy/torch scalars to numbers, non-finite floats to ``null``.

    Args:
        path: the file to write; missing parent folders are created.
        obj: the data.

    Returns:
        The path written.

    Examples:
        >>> import json, math, tempfile
        >>> from grukit.train import write_json
        >>> path = write_json(tempfile.mkdtemp() + "/m.json", {"mae": 0.5, "bad": math.nan})
        >>> json.loads(path.read_text())
        {'mae': 0.5, 'bad': None}
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_jsonable(obj), f, indent=2)
            f.write("\n")
        os.chmod(tmp, default_mode())  # mkstemp makes 0600; give the mode open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def command_line() -> str:
    """The command that started this process, as the user would type it (``grukit forecast --epochs 3``)."""
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if prog in ("__main__.py", "-c", ""):
        prog = "python"
    return " ".join([prog, *sys.argv[1:]])


def metrics_record(
    task: str,
    dataset: str,
    split: str,
    model: dict,
    baselines: dict | None = None,
    seed: int | None = None,
    wall_time_s: float | None = None,
    command: str | None = None,
    **extra: Any,
) -> dict:
    """The ``metrics.json`` dict of docs/conventions.md.

    Args:
        task: the task name (``"forecast"``, ``"music"``, ...).
        dataset: the data set's name.
        split: the split the numbers are on (``"test"``, ``"valid"``, ``"backtest"``, ...).
        model: ``{metric: value}`` of the model.
        baselines: ``{baseline: {metric: value}}``, where the task has baselines.
        seed: the run's seed.
        wall_time_s: the run's wall time in seconds (rounded to ms).
        command: the command that produced the numbers; by default this process's command line.
        **extra: further top-level keys (e.g. ``per_series``).

    Returns:
        ``{"task", "dataset", "split", "model", ["baselines",] "seed", "wall_time_s", "command",
        "grukit_version", **extra}``.

    Examples:
        >>> from grukit.train import metrics_record
        >>> rec = metrics_record("toy", "sine", "test", {"mae": 0.1}, seed=0, command="grukit toy")
        >>> sorted(rec)
        ['command', 'dataset', 'grukit_version', 'model', 'seed', 'split', 'task', 'wall_time_s']
    """
    rec: dict[str, Any] = {"task": task, "dataset": dataset, "split": split, "model": dict(model)}
    if baselines is not None:
        rec["baselines"] = {k: dict(v) for k, v in baselines.items()}
    rec.update(
        seed=seed,
        wall_time_s=None if wall_time_s is None else round(float(wall_time_s), 3),
        command=command if command is not None else command_line(),
        grukit_version=__version__,
    )
    rec.update(extra)
    return rec


class RunDir:
    """One run's folder. ``RunDir.create("forecast")`` → ``runs/forecast-20260101-120000/`` (``-2``, ``-3`` …
    appended if that name is taken); ``RunDir.create("forecast", output_dir="x")`` uses ``x`` as given.

    ``with run.guard(): ...`` deletes the folder again if an exception escapes and the folder was created by
    this run (no partial output for failed runs).
    """

    def __init__(self, path: str | os.PathLike, task: str = "model", created: bool = False) -> None:
        self.path = Path(path)
        self.task = task
        self.created = created

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    @classmethod
    def create(
        cls,
        task: str,
        output_dir: str | os.PathLike | None = None,
        root: str | os.PathLike = "runs",
        mkdir: bool = True,
        overwrite: bool = False,
    ) -> RunDir:
        """A fresh run folder for ``task`` (made now unless ``mkdir=False``).

        ``output_dir`` that already holds files is refused unless ``overwrite=True``; then its run
        files are removed first (only a folder that looks like a run folder — one holding
        ``config.json``, ``model.safetensors``, ``last.ckpt``, ``log.csv`` or ``metrics.json`` — is ever
        emptied). A path below a regular file (``file.txt/run``) is refused with one line.
        """
        emptied = False
        if output_dir is not None:
            path = Path(output_dir).expanduser()
            if check_output_dir(path, overwrite=overwrite) and _is_launching_rank():
                _empty_folder(path)
                emptied = True
        else:
            # DDP: Lightning re-launches the command for ranks > 0 a little later; they must use rank 0's
            # folder, which rank 0 hands over through the environment the children inherit.
            key = f"GRUKIT_RUN_DIR_{task.upper().replace('-', '_')}"
            if not _is_launching_rank() and os.environ.get(key):
                path = Path(os.environ[key])
            else:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                base = Path(root) / f"{task}-{stamp}"
                _check_folder_path(base, "the run folder")
                path, n = base, 1
                while path.exists():
                    n += 1
                    path = base.with_name(f"{base.name}-{n}")
                os.environ[key] = str(path)
        created = emptied or not path.exists()
        run = cls(path, task=task, created=created)
        if mkdir:
            run.mkdir()
        return run

    def mkdir(self) -> RunDir:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # permissions, read-only disk, a file in the way made meanwhile
            raise UserInputError(
                f"cannot create the run folder {self.path}: {e.strerror or e}"
            ) from None
        return self

    def file(self, name: str) -> Path:
        """``self.path / name``."""
        return self.path / name

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def last_ckpt(self) -> Path:
        return self.path / LAST_CKPT

    def write_json(self, name: str, obj: Any) -> Path:
        return write_json(self.path / name, obj)

    def write_config(self, config: Any) -> Path:
        """``config.json``: every option of the run (dataclasses and Paths are converted)."""
        return self.write_json("config.json", config)

    def write_metrics(self, **record: Any) -> Path:
        """``metrics.json`` from :func:`metrics_record`'s arguments."""
        return self.write_json("metrics.json", metrics_record(**record))

    @contextlib.contextmanager
    def guard(self, keep_on_interrupt: bool = True) -> Iterator[RunDir]:
        """Remove the folder if the block raises and this run created it (no partial output), unless it
        can be resumed: once ``last.ckpt`` exists, or on a KeyboardInterrupt (unless
        ``keep_on_interrupt=False``), the folder is kept so that ``--resume`` can continue it."""
        try:
            yield self
        except BaseException as e:
            interrupted = isinstance(e, KeyboardInterrupt) and keep_on_interrupt
            resumable = self.last_ckpt.exists()
            if self.created and self.path.is_dir() and not (interrupted or resumable):
                shutil.rmtree(self.path, ignore_errors=True)
            raise


def check_output_dir(
    output_dir: str | os.PathLike | None,
    *,
    resume: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> bool:
    """Check ``--output-dir`` before any work is done (a recipe calls it first, so that a refusal does not
    come after minutes of feature extraction); creates and deletes nothing. :func:`open_run` applies the
    same rules when the folder is made.

    Refused (:class:`UserInputError`, one line): a path that is a file or lies below one
    (``file.txt/run``); a folder that already holds files, unless it is the run being resumed or
    ``overwrite`` is set; with ``overwrite``, a non-empty folder that does not look like a run folder
    (none of ``RUN_FILES``), which is never emptied.

    Returns:
        True when the folder exists, holds files and ``overwrite`` allows replacing them.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> check_output_dir(d / "new")
        False
        >>> _ = (d / "notes.txt").write_text("x")
        >>> check_output_dir(d / "notes.txt" / "run")
        Traceback (most recent call last):
        grukit.errors.UserInputError: --output-dir .../notes.txt/run: .../notes.txt is a file, not a folder; ...
    """
    if output_dir is None:
        return False
    path = Path(output_dir).expanduser()
    _check_folder_path(path, "--output-dir")
    if resume is not None:
        folder = Path(resume).expanduser()
        folder = folder if folder.is_dir() else folder.parent
        if path.resolve() == folder.resolve():
            return False
    if not (path.is_dir() and any(path.iterdir())) or not _is_launching_rank():
        return False
    if not overwrite:
        names = sorted(p.name for p in path.iterdir())
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        hint = "" if resume is not None else f", --resume {path} to continue that run"
        raise UserInputError(
            f"--output-dir {path} already holds files ({shown}); pass --overwrite to replace them"
            f"{hint}, or choose a new folder"
        )
    if not any((path / n).exists() for n in RUN_FILES):
        raise UserInputError(
            f"--output-dir {path} is not empty and does not look like a run folder (none of "
            f"{', '.join(RUN_FILES)}); --overwrite only replaces run folders, so choose a new or "
            f"empty folder"
        )
    return True


def resolve_checkpoint(checkpoint: str | os.PathLike) -> Path:
    """The model file that ``--checkpoint X`` names.

    Args:
        checkpoint: a run folder (its ``model.safetensors`` is used) or a ``.safetensors`` file.

    Returns:
        The model file's path.

    Raises:
        UserInputError: neither a run folder holding ``model.safetensors`` nor an existing file.

    Examples:
        >>> import tempfile, pathlib, grukit
        >>> from grukit.train import resolve_checkpoint
        >>> run = pathlib.Path(tempfile.mkdtemp())
        >>> _ = grukit.save(grukit.GRU(2, 3), run / "model.safetensors")
        >>> resolve_checkpoint(run) == run / "model.safetensors"
        True
    """
    p = Path(checkpoint).expanduser()
    if p.is_dir():
        p = p / MODEL_FILE
        if not p.is_file():
            raise UserInputError(
                f"--checkpoint {checkpoint}: the folder has no {MODEL_FILE}; expected a run "
                f"folder or a .safetensors file"
            )
        return p
    if not p.is_file():
        raise UserInputError(f"--checkpoint {checkpoint}: no such file or run folder")
    return p


def resolve_resume(resume: str | os.PathLike) -> tuple[Path, Path]:
    """The run folder and trainer checkpoint that ``--resume X`` names.

    Args:
        resume: a run folder (its ``last.ckpt`` is used) or a ``.ckpt`` file.

    Returns:
        ``(run folder, checkpoint file)``; the folder is the checkpoint's parent.

    Raises:
        UserInputError: no such checkpoint.

    Examples:
        >>> import tempfile, pathlib
        >>> from grukit.train import resolve_resume
        >>> run = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (run / "last.ckpt").write_bytes(b"")
        >>> resolve_resume(run) == (run, run / "last.ckpt")
        True
    """
    p = Path(resume).expanduser()
    ckpt = p / LAST_CKPT if p.is_dir() else p
    if not ckpt.is_file():
        raise UserInputError(
            f"--resume {resume}: no {LAST_CKPT} there; expected a run folder holding "
            f"{LAST_CKPT} or a .ckpt file"
        )
    return ckpt.parent, ckpt


def open_run(
    task: str,
    output_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> tuple[RunDir, Path | None]:
    """The run folder of a ``train`` command and the checkpoint to resume from: the one path every recipe
    takes (through :func:`fit`).

    - ``resume`` given: its folder (or ``output_dir``, when that names another folder: the continuation
      is written there, see :func:`fit`) and its ``last.ckpt``;
    - else ``output_dir`` (refused if it already holds files, unless ``overwrite``; a path below a file is
      refused), else a fresh ``runs/<task>-<YYYYmmdd-HHMMSS>/``.

    Returns ``(run, ckpt)``; ``ckpt`` is None for a new run. The folder is created.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
        >>> run, ckpt = open_run("demo", output_dir=out)
        >>> run.path == out and run.created and ckpt is None
        True
        >>> _ = (out / "config.json").write_text("{}")
        >>> open_run("demo", output_dir=out)
        Traceback (most recent call last):
        grukit.errors.UserInputError: --output-dir ... already holds files (config.json); pass --overwrite ...
    """
    ckpt = None
    if resume is not None:
        folder, ckpt = resolve_resume(resume)
        same = output_dir is None or Path(output_dir).expanduser().resolve() == folder.resolve()
        if same:
            return RunDir(folder, task=task).mkdir(), ckpt
    return RunDir.create(task, output_dir=output_dir, overwrite=overwrite), ckpt


def resumed_config(
    resume: str | os.PathLike,
    cfg: _C,
    *,
    keep: Iterable[str] = ("epochs",),
    given: Iterable[str] | None = None,
    flags: Mapping[str, str] | None = None,
) -> _C:
    """The options a resumed run continues with: the run's own ``config.json``, checked against ``cfg``.

    A resumed run keeps the model and data options it was started with. ``cfg`` is the config the command
    line built now; the fields named in ``keep`` (by default only ``epochs``, the new total) are taken from
    it, every other field from the stored config. A field the user set to something else than the stored
    value is refused, so two runs are never mixed in one folder.

    Args:
        resume: the ``--resume`` value (a run folder or its ``last.ckpt``).
        cfg: the config dataclass instance built from the command line now.
        keep: field names whose new value wins (e.g. ``("epochs",)``).
        given: the field names the user passed explicitly. When ``None``, a field counts as given when its
            value differs from the dataclass default (so passing a default value explicitly is not
            detected: pass ``given`` from the CLI when it can tell).
        flags: how the command line spells a field, for the message (``{"hidden_size": "--hidden"}``);
            by default ``--`` + the field name with ``-`` for ``_``.

    Returns:
        A new instance of ``type(cfg)``.

    Raises:
        UserInputError: the run has no ``config.json``, or a given option conflicts with the stored one
            (the message names the option, the stored value and the new one).

    Example:
        >>> import dataclasses, json, tempfile, pathlib
        >>> @dataclasses.dataclass
        ... class Cfg:
        ...     lr: float = 1e-3
        ...     epochs: int = 1
        >>> run = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (run / "last.ckpt").write_bytes(b"")
        >>> _ = (run / "config.json").write_text(json.dumps({"lr": 0.01, "epochs": 2}))
        >>> resumed_config(run, Cfg(epochs=5))
        Cfg(lr=0.01, epochs=5)
    """
    import dataclasses

    if not (dataclasses.is_dataclass(cfg) and not isinstance(cfg, type)):
        raise TypeError(f"cfg: expected a dataclass instance, got {type(cfg).__name__}")
    folder, _ = resolve_resume(resume)
    path = folder / "config.json"
    if not path.is_file():
        raise UserInputError(
            f"--resume {resume}: {path} is missing; cannot tell how the run was configured"
        )
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserInputError(f"--resume {resume}: cannot read {path}: {e}") from None
    if not isinstance(stored, dict):
        raise UserInputError(f"--resume {resume}: {path} does not hold a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    keep = set(keep)
    if given is None:
        given_set = set()
        for name, f in fields.items():
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                continue
            if _jsonable(getattr(cfg, name)) != _jsonable(default):
                given_set.add(name)
    else:
        given_set = set(given)
    values = {}
    for name in fields:
        new = getattr(cfg, name)
        if name in keep or name not in stored:
            values[name] = new
            continue
        old = stored[name]
        if name in given_set and _jsonable(new) != _jsonable(old):
            flag = (flags or {}).get(name) or "--" + name.replace("_", "-")
            raise UserInputError(
                f"--resume {resume}: the run was started with {flag} {old!r}, got {new!r}; a resumed "
                f"run keeps its options (drop {flag}, or start a new run)"
            )
        values[name] = old
    return type(cfg)(**values)


@overload
def load_task_model(
    checkpoint: str | os.PathLike | None,
    shipped: str | os.PathLike,
    cls: type[_M],
    task: str,
    *,
    return_header: Literal[False] = False,
) -> tuple[_M, Path]: ...


@overload
def load_task_model(
    checkpoint: str | os.PathLike | None,
    shipped: str | os.PathLike,
    cls: type[_M],
    task: str,
    *,
    return_header: Literal[True],
) -> tuple[_M, Path, dict]: ...


def load_task_model(
    checkpoint: str | os.PathLike | None,
    shipped: str | os.PathLike,
    cls: type[_M],
    task: str,
    *,
    return_header: bool = False,
) -> tuple[_M, Path] | tuple[_M, Path, dict]:
    """The model a recipe command uses: ``--checkpoint`` (a run folder or a ``.safetensors`` file) or,
    without it, the shipped model file ``shipped``. Refuses a file that holds another kind of model than
    ``cls``. Every task loads its models through this one function.

    Args:
        checkpoint: the ``--checkpoint`` value, or None for the shipped model.
        shipped: path of the task's shipped model (``grukit/pretrained/<task>-<dataset>.safetensors``).
        cls: the model class the task expects.
        task: the task name, for messages (``grukit <task> train``).
        return_header: also return the file's grukit header (config, task, ``extra`` such as tokenizers).

    Returns:
        ``(model, path)``, or ``(model, path, header)`` with ``return_header``.

    Raises:
        UserInputError: no such file or run folder, no shipped model, or a model of another kind.

    Example:
        >>> import tempfile, pathlib, grukit
        >>> f = grukit.save(grukit.GRU(2, 3), pathlib.Path(tempfile.mkdtemp()) / "m.safetensors")
        >>> model, path = load_task_model(f, f, grukit.GRU, "demo")
        >>> type(model).__name__, path == f
        ('GRU', True)
    """
    from ..serialization import load

    if checkpoint is None:
        path = Path(shipped)
        if not path.is_file():
            raise UserInputError(
                f"no shipped {task} model at {path}; train one with `grukit {task} train` and "
                f"pass --checkpoint RUN_FOLDER"
            )
    else:
        path = resolve_checkpoint(checkpoint)
    model, header = load(path, return_header=True)
    if not isinstance(model, cls):
        raise UserInputError(
            f"{path} holds a {type(model).__name__}, not a {task} model ({cls.__name__})"
        )
    return (model, path, header) if return_header else (model, path)
