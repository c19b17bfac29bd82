"""Run folders (docs/conventions.md): ``runs/<task>-<YYYYmmdd-HHMMSS>/`` holding ``model.safetensors`` (best on
validation), ``config.json``, ``metrics.json``, ``log.csv``, ``*.png`` plots and ``last.ckpt`` (resume only).

Fault handling (docs/toolkit.md, "Runs that survive faults"):

- a run **claims** its folder for its whole life (:meth:`RunDir.claim`: an exclusive ``flock`` on
  ``.grukit.lock``, released by the kernel even after kill -9), so two runs never write into one folder;
- ``config.json`` holds the run's options, its **inputs** (``{"--csv": {"path", "sha256", "bytes"}}``, see
  :func:`grukit._io.fingerprint`) and its **status**: ``"running"`` from the start, ``"complete"`` written
  last (:meth:`RunDir.complete`), or ``"interrupted"`` / ``"diverged"`` / ``"failed"``;
- :func:`resumed_config`: stored options win unless given on the command line; resuming a complete run
  raises :class:`RunAlreadyComplete` (the CLI prints it and exits 0) unless a larger ``--epochs`` is given;
- :func:`check_inputs` refuses a resume whose data changed; :func:`check_run_complete` refuses the model of
  an incomplete run unless ``--allow-incomplete``; :func:`check_model_fits` refuses a model too large for
  the memory there is, before allocating it.

Light module (no torch/lightning import at import time) so CLIs can use it at import time.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from .._io import DiskFullError, default_mode, fingerprint, is_disk_full
from .._version import __version__
from ..errors import UserInputError

MODEL_FILE = "model.safetensors"
LAST_CKPT = "last.ckpt"
CONFIG_FILE = "config.json"
#: The lock file a run holds (``flock``) for its whole life; never removed, never counted as run content.
LOCK_FILE = ".grukit.lock"
#: Values of ``config.json``'s ``"status"``: only ``"complete"`` marks a finished run.
STATUSES = ("running", "complete", "interrupted", "diverged", "failed")
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


def _contents(path: Path) -> list[str]:
    """The names in a folder, sorted, without the run lock file."""
    return sorted(p.name for p in path.iterdir() if p.name != LOCK_FILE)


def _empty_folder(path: Path) -> None:
    for p in path.iterdir():
        if p.name == LOCK_FILE:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


_PLAIN = (str, bool, type(None))


class PlainJSON(dict):
    """A dict whose writer vouches that it holds JSON as it is (text keys; texts, ints, floats, bools,
    None, lists and dicts of them): :func:`write_json` then skips the value-by-value conversion for it (a
    non-finite float still becomes ``null``). For big tables such as the per-series metrics of 100k
    series."""


def _jsonable(obj: Any) -> Any:
    """Plain-JSON copy of ``obj``: Paths → str, dataclasses → dict, NaN/inf → None, numpy/torch scalars → float."""
    import dataclasses

    # the common exact types first: a metrics file holds millions of them at 100k series
    t = type(obj)
    if t is PlainJSON:
        return obj
    if t is float:
        return obj if math.isfinite(obj) else None
    if t in _PLAIN or t is int:
        return obj
    if t is dict:
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if t is list:
        return [_jsonable(v) for v in obj]
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


#: a dict or list with more entries than this is written one compact entry per line (see _dumps)
ROWS_FROM = 1000


def _dumps(data: Any) -> str:
    """``json.dumps(data, indent=2)``, except that a dict or list with more than :data:`ROWS_FROM`
    entries (per-series metrics of a big panel) is written one entry per line, each entry compact: the
    same JSON value, written by the C encoder instead of the pure-Python indenting one (100k series:
    ~25 MB in well under a second instead of several). Smaller files are unchanged byte for byte."""
    big: list[Any] = []

    def cut(v: Any) -> Any:  # v with each big container replaced by a placeholder string
        if isinstance(v, (dict, list)) and len(v) > ROWS_FROM:
            big.append(v)
            return f"\x00grukit-rows-{len(big) - 1}\x00"
        if type(v) is PlainJSON:
            v = _jsonable(dict(v))
        if isinstance(v, dict):
            return {k: cut(x) for k, x in v.items()}
        if isinstance(v, list):
            return [cut(x) for x in v]
        return v

    text = json.dumps(cut(data), indent=2)
    for k, v in enumerate(big):
        token = json.dumps(f"\x00grukit-rows-{k}\x00")
        at = text.index(token)
        line = text[text.rfind("\n", 0, at) + 1 : at]  # the indent, maybe '"key": '
        pad = " " * (len(line) - len(line.lstrip(" ")))
        inner = pad + "  "
        if isinstance(v, dict):
            rows = (f"{inner}{json.dumps(str(key))}: {_row(x)}" for key, x in v.items())
            block = "{\n" + ",\n".join(rows) + "\n" + pad + "}"
        else:
            block = "[\n" + ",\n".join(inner + _row(x) for x in v) + "\n" + pad + "]"
        text = text[:at] + block + text[at + len(token) :]
    return text


def _row(x: Any) -> str:
    """One entry of a big container, compact (a :class:`PlainJSON` entry holding a non-finite float or a
    value JSON has no type for goes through :func:`_jsonable` first)."""
    try:
        return json.dumps(x, allow_nan=False)
    except (ValueError, TypeError):
        return json.dumps(_jsonable(x))


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
    from .._io import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _dumps(_jsonable(obj)) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
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


class RunAlreadyComplete(Exception):
    """``--resume RUN`` of a run that already finished: not an error. The CLI prints the message on stdout
    and exits 0, leaving the folder untouched (give a larger ``--epochs`` to train further)."""


class RunInterrupted(Exception):
    """Ctrl-C during :func:`grukit.train.fit` (raised from the KeyboardInterrupt). The message says how to
    continue (``interrupted; continue with `grukit <task> train --resume RUN` ``); the CLI prints it and
    exits 130. Not a KeyboardInterrupt subclass, so that command-line frameworks pass it on unchanged."""


class RunBusy(UserInputError):
    """Another process holds the run folder (see :meth:`RunDir.claim`)."""


def _lock_file(path: Path) -> Any:
    """Open and ``flock`` ``path/LOCK_FILE`` exclusively without waiting; the open file, or None if taken."""
    import fcntl

    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, default_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    with contextlib.suppress(OSError):  # the holder's pid, for the message of the one refused
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _lock_holder(path: Path) -> str:
    try:
        return (path / LOCK_FILE).read_text().strip() or "?"
    except OSError:
        return "?"


class RunDir:
    """One run's folder. ``RunDir.create("forecast")`` → ``runs/forecast-20260101-120000/`` (``-2``, ``-3`` …
    appended if that name is taken); ``RunDir.create("forecast", output_dir="x")`` uses ``x`` as given.

    The folder is claimed (:meth:`claim`) for the life of the run: a second run on the same folder is
    refused with one line while the first runs, and finds the first one's files afterwards.
    :meth:`set_status` and :meth:`complete` keep ``config.json``'s ``"status"`` (``"complete"`` last of all).

    ``with run.guard(): ...`` deletes the folder again if an exception escapes and the folder was created by
    this run (no partial output for failed runs), unless it can be resumed.
    """

    def __init__(self, path: str | os.PathLike, task: str = "model", created: bool = False) -> None:
        self.path = Path(path)
        self.task = task
        self.created = created
        self._lock: int | None = None
        self._running = (
            False  # this object marked the run "running": a failure then records a status
        )

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
        """A fresh run folder for ``task``, made and claimed now (unless ``mkdir=False``).

        ``output_dir`` that already holds files is refused unless ``overwrite=True``; then its run
        files are removed first (only a folder that looks like a run folder — one holding
        ``config.json``, ``model.safetensors``, ``last.ckpt``, ``log.csv`` or ``metrics.json`` — is ever
        emptied). A path below a regular file (``file.txt/run``) is refused with one line. The check is
        made again once the folder is claimed, so of two runs started together on one folder exactly one
        proceeds. A fresh ``runs/<task>-<stamp>`` name is taken with an exclusive ``mkdir``.
        """
        if output_dir is not None:
            path = Path(output_dir).expanduser()
            check_output_dir(
                path, overwrite=overwrite
            )  # early, cheap refusal (re-checked under the lock)
            run = cls(path, task=task, created=not path.exists())
            if not mkdir or not _is_launching_rank():
                return run.mkdir() if mkdir else run
            run.mkdir()
            run.claim()
            try:
                if check_output_dir(path, overwrite=overwrite):
                    _empty_folder(path)
                    run.created = True
            except BaseException:
                run.release()
                raise
            return run
        # DDP: Lightning re-launches the command for ranks > 0 a little later; they must use rank 0's
        # folder, which rank 0 hands over through the environment the children inherit.
        key = f"GRUKIT_RUN_DIR_{task.upper().replace('-', '_')}"
        if not _is_launching_rank() and os.environ.get(key):
            return cls(Path(os.environ[key]), task=task)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path(root) / f"{task}-{stamp}"
        _check_folder_path(base, "the run folder")
        path, n = base, 1
        while True:
            if not mkdir:
                if not path.exists():
                    break
            else:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.mkdir()  # exclusive: two runs started in the same second get -1 and -2
                    break
                except FileExistsError:
                    pass
                except OSError as e:
                    raise UserInputError(
                        f"cannot create the run folder {path}: {e.strerror or e}"
                    ) from None
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        os.environ[key] = str(path)
        run = cls(path, task=task, created=True)
        if mkdir:
            run.claim()
        return run

    def mkdir(self) -> RunDir:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # permissions, read-only disk, a file in the way made meanwhile
            if is_disk_full(e):
                raise DiskFullError(self.path) from None
            raise UserInputError(
                f"cannot create the run folder {self.path}: {e.strerror or e}"
            ) from None
        return self

    # ------------------------------------------------------------------ claim (lock) and status
    def claim(self) -> RunDir:
        """Hold the folder for this run: an exclusive, non-blocking ``flock`` on ``.grukit.lock``, kept until
        :meth:`release` or :meth:`complete`, or until the process ends (the kernel drops it even after
        kill -9, so a killed run can be resumed at once). Claiming twice from one object is a no-op; ranks
        other than 0 of a multi-process run do not claim.

        Raises:
            RunBusy: another process holds the folder (the message names its pid).
        """
        if self._lock is not None or not _is_launching_rank():
            return self
        try:
            fd = _lock_file(self.path)
        except OSError as e:
            if is_disk_full(e):
                raise DiskFullError(self.path / LOCK_FILE) from None
            raise UserInputError(
                f"cannot claim the run folder {self.path}: {e.strerror or e}"
            ) from None
        if fd is None:
            raise RunBusy(
                f"{self.path} is in use by another run (pid {_lock_holder(self.path)}); wait for it to "
                f"finish or choose another --output-dir"
            )
        self._lock = fd
        return self

    def release(self) -> None:
        """Drop the claim (the lock file stays; it is never counted as run content)."""
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock)
            self._lock = None

    def __del__(
        self,
    ) -> None:  # an abandoned RunDir (tests, notebooks) does not keep its folder locked
        with contextlib.suppress(Exception):
            self.release()

    @property
    def status(self) -> str | None:
        """``config.json``'s ``"status"``: see :data:`STATUSES`; None when there is none."""
        return run_status(self.path)

    def set_status(self, status: str, **detail: Any) -> None:
        """Record ``status`` (one of :data:`STATUSES`, plus optional details such as ``reason``) in
        ``config.json``, atomically; other keys are kept. Details of an earlier status are dropped."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        cfg = _read_config(self.path) or {}
        cfg.pop("status_detail", None)
        cfg["status"] = status
        if detail:
            cfg["status_detail"] = detail
        write_json(self.path / CONFIG_FILE, cfg)
        self._running = status == "running"

    def complete(self) -> None:
        """Mark the run finished: call it after every artifact (metrics, forecasts, plots) is written. Until
        then ``predict``/``evaluate`` refuse the folder's model (unless ``--allow-incomplete``), and
        ``--resume`` continues it. Releases the claim."""
        self.set_status("complete")
        self.release()

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

    def write_config(self, config: Any, inputs: Mapping[str, Any] | None = None) -> Path:
        """``config.json``: every option of the run (dataclasses and Paths are converted), plus
        ``"status": "running"`` and, when given, ``"inputs"`` (``{option: fingerprint}``, see
        :func:`input_fingerprints`). A config that is not a mapping is stored under ``"options"``."""
        data = _jsonable(config) if config is not None else {}
        if not isinstance(data, dict):
            data = {"options": data}
        data.pop("status_detail", None)
        data["status"] = "running"
        if inputs is not None:
            data["inputs"] = dict(inputs)
        path = self.write_json(CONFIG_FILE, data)
        self._running = True
        return path

    def write_metrics(self, **record: Any) -> Path:
        """``metrics.json`` from :func:`metrics_record`'s arguments."""
        return self.write_json("metrics.json", metrics_record(**record))

    def files(self) -> list[str]:
        """The names of the files in the folder (sorted; hidden and temporary files left out)."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if not p.name.startswith("."))

    def summary(self) -> str:
        """One line naming the folder and every file in it: ``run folder runs/x: config.json, ...``."""
        return f"run folder {self.path}: {', '.join(self.files())}"

    @contextlib.contextmanager
    def guard(self, keep_on_interrupt: bool = True) -> Iterator[RunDir]:
        """Remove the folder if the block raises and this run created it (no partial output), unless it
        can be resumed: once ``last.ckpt`` exists, or on a KeyboardInterrupt (unless
        ``keep_on_interrupt=False``), the folder is kept so that ``--resume`` can continue it. A kept folder
        is marked ``"interrupted"`` (Ctrl-C), ``"diverged"`` (a non-finite loss) or ``"failed"`` when this
        run had marked it ``"running"`` (a refusal before that leaves a resumed folder as it was). The claim
        is released either way when the block raises."""
        try:
            yield self
        except BaseException as e:
            ctrl_c = isinstance(e, (KeyboardInterrupt, RunInterrupted))
            interrupted = ctrl_c and keep_on_interrupt
            resumable = self.last_ckpt.exists()
            if self.created and self.path.is_dir() and not (interrupted or resumable):
                shutil.rmtree(self.path, ignore_errors=True)
            elif self._running and self.path.is_dir() and _is_launching_rank():
                status = (
                    "interrupted"
                    if ctrl_c
                    else "diverged"
                    if isinstance(e, TrainingDiverged)
                    else "failed"
                )
                with contextlib.suppress(Exception):  # a full disk may refuse this too
                    self.set_status(status, reason=str(e)[:300] or type(e).__name__)
            self.release()
            raise


class TrainingDiverged(UserInputError):
    """The loss became non-finite (NaN or inf): the run stops, the message names the epoch (exit 2)."""


def _read_config(folder: Path) -> dict | None:
    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_status(folder: str | os.PathLike) -> str | None:
    """The ``"status"`` in ``folder/config.json``: ``"running"`` (still running, or killed),
    ``"complete"``, ``"interrupted"``, ``"diverged"``, ``"failed"``; None when the folder has no readable
    config or the config has no status (a run from a grukit before 0.x.y: treated as complete).

    Example:
        >>> import tempfile, pathlib
        >>> run = RunDir(tempfile.mkdtemp())
        >>> _ = run.write_config({"lr": 0.1})
        >>> run_status(run.path)
        'running'
        >>> run.complete()
        >>> run_status(run.path)
        'complete'
    """
    cfg = _read_config(Path(folder))
    status = None if cfg is None else cfg.get("status")
    return status if isinstance(status, str) else None


def check_run_complete(model_path: str | os.PathLike, allow_incomplete: bool | None = None) -> None:
    """Refuse the model file of a run that did not finish, unless ``allow_incomplete``.

    A model file counts as part of a run when its folder holds a ``config.json`` with a ``"status"``; any
    status but ``"complete"`` is refused (the model is the best one found before the run was stopped,
    killed or ran out of disk). Files outside run folders, and runs without a status, pass.
    ``allow_incomplete=None`` uses ``--allow-incomplete`` of the running command (see
    :data:`grukit.train.options.AllowIncomplete`).

    Raises:
        UserInputError: ``<folder> is an incomplete run (status "running": ...); pass --allow-incomplete
            to use its model anyway``.
    """
    if allow_incomplete is None:
        allow_incomplete = ALLOW_INCOMPLETE.get()
    folder = Path(model_path).parent
    status = run_status(folder)
    if status is None or status == "complete" or allow_incomplete:
        return
    why = {
        "running": "still running, or killed before it finished",
        "interrupted": "interrupted",
        "diverged": "its training diverged",
        "failed": "it failed before it finished",
    }.get(status, status)
    raise UserInputError(
        f"{folder} is an incomplete run (status {status!r}: {why}); continue it with --resume, or "
        f"pass --allow-incomplete to use its model anyway"
    )


#: ``--allow-incomplete`` of the running command (set by the option's callback; read by
#: :func:`check_run_complete` through :func:`load_task_model`).
ALLOW_INCOMPLETE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "grukit_allow_incomplete", default=False
)


def input_fingerprints(inputs: Mapping[str, str | os.PathLike | None]) -> dict[str, dict]:
    """``{option: fingerprint(path)}`` for the inputs of a run that are given (None values are left out):
    what ``config.json``'s ``"inputs"`` holds. See :func:`grukit._io.fingerprint`."""
    return {k: fingerprint(v) for k, v in inputs.items() if v is not None}


def resolve_input(
    resume: str | os.PathLike | None,
    name: str,
    given: str | os.PathLike | None,
    find: Any = None,
) -> Any:
    """The input ``name`` (``"--data-dir"``, ``"--csv"``) a run reads, checked against a resumed run's record.

    The path is ``given`` when the user gave it, else, when resuming, the path recorded in the run's
    ``config.json`` ``"inputs"`` (so ``--resume RUN`` alone reads what the run read), else None; ``find``
    (e.g. ``lambda p: find_data_dir("sst2", p)``) then turns it into the real path (its default search
    when None). When resuming, the result's fingerprint is compared with the record first, so changed
    data is refused before it is read (:func:`check_inputs`).

    Returns:
        ``find(path)``, or the path itself without ``find``.
    """
    path: Path | None = Path(given) if given is not None else None
    record: dict = {}
    if resume is not None:
        folder = resolve_resume(resume)[0]
        record = (_read_config(folder) or {}).get("inputs") or {}
        rec = record.get(name)
        if path is None and isinstance(rec, dict) and isinstance(rec.get("path"), str):
            path = Path(rec["path"])
    found = find(path) if find is not None else path
    if resume is not None and found is not None and name in record:
        check_inputs(resolve_resume(resume)[0], input_fingerprints({name: found}), resume)
    return found


def check_inputs(
    folder: str | os.PathLike, current: Mapping[str, dict], resume: Any = None
) -> None:
    """Refuse to resume the run in ``folder`` when an input it recorded has changed.

    Args:
        folder: the run folder being resumed.
        current: :func:`input_fingerprints` of the inputs the resumed run would read now.
        resume: the ``--resume`` value, for the message (default: ``folder``).

    Raises:
        UserInputError: an input recorded at the start has other content now (the message names the
            option, the path and both fingerprints).
    """
    stored = (_read_config(Path(folder)) or {}).get("inputs") or {}
    label = resume if resume is not None else folder
    for name, fp in current.items():
        old = stored.get(name)
        if not isinstance(old, dict) or old.get("sha256") is None:
            continue
        if old.get("sha256") != fp.get("sha256"):
            raise UserInputError(
                f"--resume {label}: {name} {fp.get('path')} has changed since the run started "
                f"(sha256 {str(old['sha256'])[:12]}… then, {str(fp.get('sha256'))[:12]}… now); "
                f"resume with the original data or start a new run"
            )


def available_memory() -> int:
    """Bytes of memory this process can still use: ``MemAvailable`` of ``/proc/meminfo``, lowered to the
    cgroup limit (``memory.max``) minus current use where one is set; falls back to ``sysconf``."""
    avail: int | None = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().split("\n"):
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 62
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            avail = min(avail, max(int(limit) - used, 0))
    return avail


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def check_model_fits(
    build: Any,
    options: str = "the model",
    *,
    bytes_per_param: int = 16,
    available: int | None = None,
) -> int:
    """Refuse a model too large to train here, before any of it is allocated.

    ``build()`` is called on PyTorch's meta device (shapes only, no memory), under a budget of
    ``available // bytes_per_param`` parameter elements: a model that would pass it stops being built at
    once, so ``--layers 100000`` costs no more than the layers that fit. Training needs about 16 bytes per
    float32 parameter (weights, gradients, two Adam moments).

    Args:
        build: a callable returning the model (``lambda: MyModel(hidden_size=h, ...)``).
        options: how the command line asked for it, for the message (``"--hidden 200000 --layers 2"``).
        bytes_per_param: memory per parameter element while training.
        available: bytes available (default: :func:`available_memory`).

    Returns:
        The number of parameter elements.

    Raises:
        UserInputError: ``--hidden 200000: the model needs more memory to train than the 12.0 GB
            available (about 16 bytes per parameter); choose a smaller model``.

    Example:
        >>> import grukit
        >>> check_model_fits(lambda: grukit.GRU(4, 8), "--hidden 8")
        336
        >>> check_model_fits(lambda: grukit.GRU(4, 10**6), "--hidden 1000000", available=10**9)
        Traceback (most recent call last):
        grukit.errors.UserInputError: --hidden 1000000: the model needs more memory to train than the 1.0 GB ...
    """
    import torch

    from ..serialization import _budget, _TooBig

    avail = available_memory() if available is None else int(available)
    limit = max(avail // bytes_per_param, 1)
    try:
        with _budget(1 << 62, limit), torch.device("meta"):
            model = build()
    except _TooBig:
        raise UserInputError(
            f"{options}: the model needs more memory to train than the {_human_bytes(avail)} "
            f"available (about {bytes_per_param} bytes per parameter); choose a smaller model"
        ) from None
    n = sum(p.numel() for p in model.parameters())
    if n > limit:  # parameters made without registration (not a Module's attribute)
        raise UserInputError(
            f"{options}: the model needs about {_human_bytes(n * bytes_per_param)} of memory to "
            f"train ({_human_bytes(avail)} available); choose a smaller model"
        )
    return n


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
    if not (path.is_dir() and _contents(path)) or not _is_launching_rank():
        return False
    if not overwrite:
        names = _contents(path)
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
            return RunDir(folder, task=task).mkdir().claim(), ckpt
    return RunDir.create(task, output_dir=output_dir, overwrite=overwrite), ckpt


def resumed_config(
    resume: str | os.PathLike,
    cfg: _C,
    *,
    keep: Iterable[str] = ("epochs",),
    given: Iterable[str] | None = None,
    flags: Mapping[str, str] | None = None,
    epochs_field: str = "epochs",
) -> _C:
    """The options a resumed run continues with: the run's own ``config.json``, checked against ``cfg``.

    The rule (docs/conventions.md): **stored options win unless given on the command line.** ``cfg`` is the
    config the command line built now; ``given`` names the fields the user typed. A field not given takes
    its stored value (so ``--resume RUN`` alone continues the run exactly as it was started, ``--epochs``
    included). A given field named in ``keep`` (by default only ``epochs``, the new total) takes the new
    value; any other given field that differs from the stored value is refused, so two runs are never mixed
    in one folder.

    A run whose ``config.json`` says ``"status": "complete"`` is not trained again: unless a larger
    ``epochs_field`` is given, :class:`RunAlreadyComplete` is raised (the CLI prints "already complete" and
    exits 0 without touching the folder).

    Args:
        resume: the ``--resume`` value (a run folder or its ``last.ckpt``).
        cfg: the config dataclass instance built from the command line now.
        keep: field names whose new value wins when given (e.g. ``("epochs",)``).
        given: the field names the user passed explicitly. When ``None``, a field counts as given when its
            value differs from the dataclass default (so passing a default value explicitly is not
            detected: pass ``given`` from the CLI when it can tell, see
            :func:`grukit.train.options.given_options`).
        flags: how the command line spells a field, for the message (``{"hidden_size": "--hidden"}``);
            by default ``--`` + the field name with ``-`` for ``_``.
        epochs_field: the field holding the epoch budget (for the "already complete" rule).

    Returns:
        A new instance of ``type(cfg)``.

    Raises:
        UserInputError: the run has no ``config.json``, or a given option conflicts with the stored one
            (the message names the option, the stored value and the new one).
        RunAlreadyComplete: the run is complete and no larger ``epochs_field`` was given.

    Example:
        >>> import dataclasses, json, tempfile, pathlib
        >>> @dataclasses.dataclass
        ... class Cfg:
        ...     lr: float = 1e-3
        ...     epochs: int = 1
        >>> run = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (run / "last.ckpt").write_bytes(b"")
        >>> _ = (run / "config.json").write_text(json.dumps({"lr": 0.01, "epochs": 2}))
        >>> resumed_config(run, Cfg())  # nothing given: the stored run as it was
        Cfg(lr=0.01, epochs=2)
        >>> resumed_config(run, Cfg(epochs=5), given={"epochs"})
        Cfg(lr=0.01, epochs=5)
    """
    import dataclasses

    if not (dataclasses.is_dataclass(cfg) and not isinstance(cfg, type)):
        raise TypeError(f"cfg: expected a dataclass instance, got {type(cfg).__name__}")
    folder, _ = resolve_resume(resume)
    path = folder / CONFIG_FILE
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
        if name not in stored:
            values[name] = new
            continue
        old = stored[name]
        if name in given_set and name in keep:
            values[name] = new
            continue
        if name in given_set and _jsonable(new) != _jsonable(old):
            flag = (flags or {}).get(name) or "--" + name.replace("_", "-")
            raise UserInputError(
                f"--resume {resume}: the run was started with {flag} {old!r}, got {new!r}; a resumed "
                f"run keeps its options (drop {flag}, or start a new run)"
            )
        values[name] = old
    if stored.get("status") == "complete":
        old_epochs = stored.get(epochs_field)
        new_epochs = values.get(epochs_field)
        more = (
            epochs_field in given_set
            and isinstance(old_epochs, int)
            and isinstance(new_epochs, int)
            and new_epochs > old_epochs
        )
        if not more:
            extra = (
                f" ({epochs_field.replace('_', ' ')} {old_epochs})"
                if old_epochs is not None
                else ""
            )
            flag = (flags or {}).get(epochs_field) or "--" + epochs_field.replace("_", "-")
            raise RunAlreadyComplete(
                f"{folder} is already complete{extra}; nothing to do (pass a larger {flag} to train "
                f"it further)"
            )
    return type(cfg)(**values)


@overload
def load_task_model(
    checkpoint: str | os.PathLike | None,
    shipped: str | os.PathLike,
    cls: type[_M],
    task: str,
    *,
    return_header: Literal[False] = False,
    allow_incomplete: bool | None = None,
) -> tuple[_M, Path]: ...


@overload
def load_task_model(
    checkpoint: str | os.PathLike | None,
    shipped: str | os.PathLike,
    cls: type[_M],
    task: str,
    *,
    return_header: Literal[True],
    allow_incomplete: bool | None = None,
) -> tuple[_M, Path, dict]: ...


def load_task_model(
    checkpoint: str | os.PathLike | None,
    shipped: str | os.PathLike,
    cls: type[_M],
    task: str,
    *,
    return_header: bool = False,
    allow_incomplete: bool | None = None,
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
        allow_incomplete: use the model of a run that did not finish (see :func:`check_run_complete`);
            None: the running command's ``--allow-incomplete``.

    Returns:
        ``(model, path)``, or ``(model, path, header)`` with ``return_header``.

    Raises:
        UserInputError: no such file or run folder, no shipped model, a model of another kind, or the
            model of an incomplete run.

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
        check_run_complete(path, allow_incomplete)
    model, header = load(path, return_header=True)
    if not isinstance(model, cls):
        raise UserInputError(
            f"{path} holds a {type(model).__name__}, not a {task} model ({cls.__name__})"
        )
    return (model, path, header) if return_header else (model, path)
