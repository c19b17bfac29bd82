"""Run folders (CONVENTIONS.md): ``runs/<task>-<YYYYmmdd-HHMMSS>/`` holding ``model.safetensors`` (best on
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._io import default_mode
from .._version import __version__
from ..errors import UserInputError

MODEL_FILE = "model.safetensors"
LAST_CKPT = "last.ckpt"


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
    """Write ``obj`` as indented JSON atomically (temporary file renamed into place)."""
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
    """The ``metrics.json`` dict of CONVENTIONS.md (task, dataset, split, model, baselines, seed, wall_time_s,
    command, grukit_version) plus any ``extra`` keys (e.g. ``per_series``)."""
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
    ) -> RunDir:
        """A fresh run folder for ``task`` (made now unless ``mkdir=False``)."""
        if output_dir is not None:
            path = Path(output_dir).expanduser()
            if path.exists() and not path.is_dir():
                raise UserInputError(f"--output-dir {path} exists and is not a folder")
        else:
            # DDP: Lightning re-launches the command for ranks > 0 a little later; they must use rank 0's
            # folder, which rank 0 hands over through the environment the children inherit.
            key = f"GRUKIT_RUN_DIR_{task.upper().replace('-', '_')}"
            if os.environ.get("LOCAL_RANK", "0") != "0" and os.environ.get(key):
                path = Path(os.environ[key])
            else:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                base = Path(root) / f"{task}-{stamp}"
                path, n = base, 1
                while path.exists():
                    n += 1
                    path = base.with_name(f"{base.name}-{n}")
                os.environ[key] = str(path)
        created = not path.exists()
        run = cls(path, task=task, created=created)
        if mkdir:
            run.mkdir()
        return run

    def mkdir(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
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


def resolve_checkpoint(checkpoint: str | os.PathLike) -> Path:
    """``--checkpoint X``: a run folder (→ ``X/model.safetensors``) or a ``.safetensors`` file."""
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
    """``--resume X``: a run folder (→ ``X/last.ckpt``) or a ``.ckpt`` file. Returns (run folder, ckpt)."""
    p = Path(resume).expanduser()
    ckpt = p / LAST_CKPT if p.is_dir() else p
    if not ckpt.is_file():
        raise UserInputError(
            f"--resume {resume}: no {LAST_CKPT} there; expected a run folder holding "
            f"{LAST_CKPT} or a .ckpt file"
        )
    return ckpt.parent, ckpt


def load_task_model(checkpoint, shipped: Path, cls: type, task: str):
    """``(model, path)`` for a recipe command: ``--checkpoint`` (run folder or .safetensors) or, without it,
    the shipped model ``shipped``; refuses a file that holds another kind of model than ``cls``."""
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
    model = load(path)
    if not isinstance(model, cls):
        raise UserInputError(
            f"{path} holds a {type(model).__name__}, not a {task} model ({cls.__name__})"
        )
    return model, path
