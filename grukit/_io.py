"""Writing output files: all or nothing, with the permissions a plain ``open()`` gives, and messages that
name the file the user asked for.

Every grukit output (model files, JSON, PNG, MIDI, ONNX, Keras, CSV) is first written to a hidden temporary
file in the destination folder and then renamed over the destination, so a crash or an error never leaves a
half-written file. ``tempfile.mkstemp`` creates its file ``0600``; :func:`atomic_path` sets the mode a
normal ``open(path, "w")`` would have given (``0o666 & ~umask``) before the rename.

Light module (standard library only), so command modules may import it at import time.

Example:
    >>> import json, os, tempfile
    >>> from grukit._io import atomic_path
    >>> folder = tempfile.mkdtemp()
    >>> with atomic_path(os.path.join(folder, "a.json")) as tmp:
    ...     _ = tmp.write_text(json.dumps({"x": 1}))
    >>> sorted(os.listdir(folder))
    ['a.json']
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import UserInputError

_UMASK_LOCK = threading.Lock()

#: errno values that mean "the disk (or the user's quota) is full".
_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(UserInputError):
    """The disk filled up while grukit wrote ``path``: ``no space left on device while writing <path>``.

    A user-facing condition (the CLI prints the one line and exits 2); ``path`` is always the final file
    the user would look for, never a temporary one.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        super().__init__(f"no space left on device while writing {self.path}")


def is_disk_full(e: BaseException) -> bool:
    """True when ``e`` is an OSError saying that the disk (or quota) is full."""
    return isinstance(e, OSError) and e.errno in _FULL


def split_lines(text: str) -> list[str]:
    r"""Split ``text`` into lines at ``\n`` (a ``\r\n`` pair counts as one break) and nowhere else.

    ``str.splitlines`` also breaks at U+0085, U+2028, form feeds and other characters that are valid
    *inside* a line of a ``TEXT<TAB>LABEL`` file; every line-based reader in grukit uses this function
    instead. A final line break does not make an extra empty line.

    Examples:
        >>> split_lines("a\u0085b\tpos\r\nc\n")
        ['a\x85b\tpos', 'c']
        >>> split_lines("")
        []
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def fingerprint(path: str | os.PathLike) -> dict:
    """A content fingerprint of an input file or folder, for a run's ``config.json``.

    Returns ``{"path": <absolute path>, "sha256": <hex>, "bytes": <total size>}``. For a file, ``sha256``
    is what ``sha256sum`` prints; for a folder, it covers every file below it (relative names and contents, in sorted order; hidden files skipped), so
    the same data copied elsewhere has the same ``sha256``.

    Raises:
        UserInputError: the path does not exist.

    Examples:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
        >>> _ = f.write_text("x\\n1\\n")
        >>> fp = fingerprint(f)
        >>> fp["bytes"], fp["sha256"][:12]
        (4, 'daff832f8020')
    """
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise UserInputError(f"{path}: no such file or folder")
    h = hashlib.sha256()
    total = 0
    files = (
        [p]
        if p.is_file()
        else sorted(
            f
            for f in p.rglob("*")
            if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
        )
    )
    for f in files:
        if f != p:
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
                total += len(block)
        if f != p:
            h.update(b"\0")
    return {"path": str(p), "sha256": h.hexdigest(), "bytes": total}


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back; serialized by a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666 & ~umask`` (``0o644`` under umask 022)."""
    return 0o666 & ~current_umask()


def check_output_file(
    path: str | os.PathLike, option: str | None = None, parents: bool = False
) -> Path:
    """Refuse an output path that cannot be written, before any work is done.

    Checks that ``path`` is not a folder, that its parent exists and is a folder, and that a file can be
    created there (by creating and removing an empty one). With ``parents=True`` (for writers that create missing folders) a missing parent is fine as
    long as nothing on the way is an existing file. ``option`` (e.g. ``"--out"``) prefixes the message.
    Returns ``path`` as a Path.

    Raises:
        UserInputError: naming ``path`` (never a temporary file) and what is wrong with it.
    """
    path = Path(path).expanduser()
    label = f"{option} {path}" if option else str(path)
    if path.is_dir():
        raise UserInputError(f"{label} is a folder; expected a file name")
    parent = path.parent
    if parents and not parent.exists():
        blocker = blocking_file(parent)
        if blocker is not None:
            raise UserInputError(f"{label}: {blocker} is a file, not a folder")
        return path
    if not parent.exists():
        blocker = blocking_file(parent)
        if blocker is not None:
            raise UserInputError(f"{label}: {blocker} is a file, not a folder")
        raise UserInputError(f"{label}: folder {parent} does not exist")
    if not parent.is_dir():
        raise UserInputError(f"{label}: {parent} is a file, not a folder")
    try:  # a real probe: os.access says yes to root even where the file system says no (/proc)
        fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=parent)
    except OSError as e:
        raise UserInputError(f"cannot write {label}: {e.strerror}") from None
    os.close(fd)
    os.unlink(probe)
    return path


def check_output_dir(path: str | os.PathLike, option: str = "--output-dir") -> Path:
    """Refuse an output folder that cannot be created: it, or a folder above it, is an existing file.

    Raises:
        UserInputError: e.g. ``--output-dir notes.txt/run: notes.txt is a file, not a folder``.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{option} {path} is a file, not a folder")
    blocker = blocking_file(path.parent)
    if blocker is not None:
        raise UserInputError(f"{option} {path}: {blocker} is a file, not a folder")
    return path


def blocking_file(path: Path) -> Path | None:
    """The first existing ancestor-or-self of ``path`` (from the top) that is not a folder, if any."""
    for p in reversed([path, *path.parents]):
        if p.exists() and not p.is_dir():
            return p
        if not p.exists():
            return None
    return None


def check_input_file(path: str | os.PathLike, option: str | None = None) -> Path:
    """Refuse an input path that is missing or is a folder, with a message that says which.

    Raises:
        UserInputError: ``--file notes: is a folder, not a file`` / ``--file x.txt: no such file``.
    """
    path = Path(path).expanduser()
    label = f"{option} {path}" if option else str(path)
    if path.is_dir():
        raise UserInputError(f"{label}: is a folder, not a file")
    if not path.exists():
        raise UserInputError(f"{label}: no such file")
    if not path.is_file():
        raise UserInputError(f"{label}: not a regular file")
    return path


def read_text_file(path: str | os.PathLike, option: str | None = None) -> str:
    """The UTF-8 text of an input file, after :func:`check_input_file`; refuses other encodings.

    Raises:
        UserInputError: missing, a folder, unreadable, or not UTF-8 (with the byte offset).
    """
    path = check_input_file(path, option)
    label = f"{option} {path}" if option else str(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserInputError(f"{label}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise UserInputError(f"{label}: cannot read it ({e.strerror})") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, option: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, give it the default mode and rename
    it to ``path``; when it fails, remove it (nothing is left behind either way).

    The parent folder must exist. Failures to create the file name ``path`` itself, not the temporary file;
    a full disk (while creating, writing or renaming) raises :class:`DiskFullError` naming ``path``.
    """
    with atomic_paths([path], option=option) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(
    paths: list[str | os.PathLike] | tuple[str | os.PathLike, ...], option: str | None = None
) -> Iterator[tuple[Path, ...]]:
    """:func:`atomic_path` for several files written together (e.g. a MIDI file and its PNG): all are
    renamed into place only when the block succeeds."""
    finals = [Path(p).expanduser() for p in paths]
    tmps: list[Path] = []
    mode = default_mode()
    try:
        for final in finals:
            check_output_file(final, option)
            try:
                fd, tmp_name = tempfile.mkstemp(
                    prefix=f".tmp-{final.name}-", suffix=final.suffix, dir=final.parent
                )
            except OSError as e:
                if is_disk_full(e):
                    raise DiskFullError(final) from None
                label = f"{option} {final}" if option else str(final)
                raise UserInputError(f"cannot write {label}: {e.strerror}") from None
            os.close(fd)
            tmps.append(Path(tmp_name))
        current = finals[0] if finals else None
        try:
            yield tuple(tmps)
            for tmp_path, final in zip(tmps, finals):
                current = final
                with open(
                    tmp_path, "rb+"
                ) as fh:  # the data is on disk before the name points at it
                    os.fsync(fh.fileno())
                os.chmod(tmp_path, mode)
                os.replace(tmp_path, final)
        except OSError as e:
            if is_disk_full(e) and current is not None:
                raise DiskFullError(current) from None
            raise
    finally:
        for tmp_path in tmps:
            tmp_path.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str, option: str | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically with the default mode."""
    with atomic_path(path, option) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes, option: str | None = None) -> Path:
    """Write ``data`` to ``path`` atomically with the default mode."""
    with atomic_path(path, option) as tmp:
        tmp.write_bytes(data)
    return Path(path)


__all__ = [
    "DiskFullError",
    "atomic_path",
    "atomic_paths",
    "blocking_file",
    "check_input_file",
    "check_output_dir",
    "check_output_file",
    "current_umask",
    "default_mode",
    "fingerprint",
    "is_disk_full",
    "read_text_file",
    "split_lines",
    "write_bytes",
    "write_text",
]
