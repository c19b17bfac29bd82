"""The GRUCell streaming step's per-call checks in C++ (``csrc/torch_step.cpp``), an optional CPython extension.

At batch 1 and H = 256 the native step takes ~13 µs and the checks ``GRUCell.__call__`` and
:meth:`grukit.kernels.stream.StepPlan.cell` make in Python another ~5 µs (Zen 4): hooks, no graph capture
or transform, x and h plain contiguous CPU float32 tensors of the plan's shapes, no autograd needed, the
weights the same tensors with the same data pointer and version. This extension makes the same checks in
C++, allocates the output and calls the kernel library's ``grukit_step``; when any check fails it returns
None and the Python path runs (and raises its errors for bad input). It is an accelerator only: results
are those of the same native step.

Unlike the kernel library (no torch or Python headers; ``_build.py``), it is compiled against the installed
torch's headers, with ``$CXX`` (or g++/c++/clang++), once (~15-30 s), into
``$GRUKIT_CACHE_DIR/torch_step/<hash>/`` (the hash covers the source, torch's version, Python's and the
compiler). A ``GRUCell`` never waits for that: its first streaming step starts the build in a background
thread (``load(wait=False)``) and the Python checks run until it has loaded; then every step plan is
rebuilt once (:func:`add_ready_hook`) and takes it. Where the build fails (no compiler, no headers) the
Python path stays, as it does with ``GRUKIT_TORCH_STEP=0``. :func:`status` says which. ``load()`` (the
default ``wait=True``) builds in the caller's thread and returns the module: what ``.ci/run`` and the tests
use to have it before they time or check anything.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from . import _build

log = logging.getLogger("grukit.kernels")

SOURCE = Path(__file__).resolve().parent / "csrc" / "torch_step.cpp"
_NAME = "_grukit_torch_step"
_mod: ModuleType | None = None
_error: str | None = None
_tried = False  # whether the build and load have finished (or were declined)
_thread: threading.Thread | None = None  # the background build of load(wait=False), while it runs
_lock = threading.Lock()
_ready_hooks: list[Any] = []  # called (no arguments) once the module has loaded
_forward: list[Any] = []  # GRUCell.forward, registered by grukit.nn.cell (the layer above this one)


def add_ready_hook(fn: Any) -> None:
    """Call ``fn()`` once the extension has loaded (at once if it has): :mod:`.stream` bumps its plans'
    generation there, so plans made while the build ran are rebuilt and take the C++ checks."""
    _ready_hooks.append(fn)
    if _mod is not None:
        fn()


def register_forward(forward: Any) -> None:
    """Record ``GRUCell.forward``: a cell whose class overrides it runs the Python path."""
    _forward[:] = [forward]


def _command(out: str) -> list[str]:
    from torch.utils import cpp_extension

    cxx = _build._compiler()
    inc = [f"-I{p}" for p in cpp_extension.include_paths()]
    inc.append(f"-I{sysconfig.get_paths()['include']}")
    libdir = str(Path(torch.__file__).resolve().parent / "lib")
    return [
        cxx,
        "-O2",
        "-shared",
        "-fPIC",
        "-std=c++17",
        "-w",
        f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
        *inc,
        str(SOURCE),
        f"-L{libdir}",
        f"-Wl,-rpath,{libdir}",
        "-lc10",
        "-ltorch_cpu",
        "-ltorch_python",
        "-o",
        out,
    ]


def _path() -> Path:
    key = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        torch.__version__.encode(),
        sys.version.encode(),
        " ".join(_command("")).encode(),
    ):
        key.update(part)
        key.update(b"\0")
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return _build.cache_dir() / "torch_step" / key.hexdigest()[:16] / f"{_NAME}{suffix}"


def _compile(path: Path) -> None:
    """Build the module into ``path``; where that fails nothing is left in the cache (no compiler: nothing
    is created at all)."""
    cxx = _command("")[0]
    if shutil.which(cxx) is None:
        raise _build.BuildError(f"cannot run the C++ compiler {cxx!r}")
    made = [d for d in (path.parent.parent, path.parent) if not d.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    log.warning(
        "grukit: compiling the GRUCell step's C++ checks once (~15-30 s); caching them in %s",
        path.parent,
    )
    tmp = str(path.with_name(f"{path.name}.{os.getpid()}.part"))
    cmd = _command(tmp)
    sh = shutil.which("sh")
    if sh:  # the child renames too: a build the process exits during (a daemon thread) still lands
        cmd = [
            sh,
            "-c",
            'tmp=$1; out=$2; shift 2; "$@" && mv -f "$tmp" "$out"',
            "sh",
            tmp,
            str(path),
            *cmd,
        ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise _build.BuildError(
                f"compiling {SOURCE.name} failed: {proc.stderr.strip()[-2000:]}"
            )
        if not sh:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if not path.exists():
            for d in reversed(made):  # the folders this call made, innermost first
                shutil.rmtree(d, ignore_errors=True)


def _init(mod: ModuleType) -> None:
    from torch.autograd import forward_ad
    from torch.nn.modules import module as nn_module

    from . import fused, route

    onnx_globals = getattr(route, "_onnx_globals", None)
    onnx_flags = getattr(route, "_onnx_flags", None)
    if onnx_globals is None or onnx_flags is None:
        raise RuntimeError("this torch keeps its ONNX export flags elsewhere")
    mod.init(
        torch._C._is_tracing,
        route._any_autocast,
        route._dispatch_depth,
        route._functorch_level,
        forward_ad,
        onnx_globals,
        onnx_flags,
        vars(nn_module),
        _forward[0],
        fused.calls,
    )


def load(wait: bool = True) -> ModuleType | None:
    """The extension module, or None where it cannot be built or is disabled.

    Args:
        wait: True: build it now in this thread if it is not cached (~15-30 s once) and return it. False:
            never compile in this thread: a cached build is loaded at once (milliseconds); otherwise the
            build starts in a background thread and None is returned until it has loaded (the hooks of
            :func:`add_ready_hook` run then).
    """
    global _thread
    if _tried:
        return _mod
    with _lock:
        if not _tried and _thread is None:
            path = _declined_or_path()
            if path is not None and not path.exists() and not wait:
                _thread = threading.Thread(
                    target=_finish, args=(path, True), name="grukit-torch-step-build", daemon=True
                )
                _thread.start()
            else:
                _finish(path)
        t = _thread
    if wait and t is not None:
        t.join()
    return _mod


def building() -> bool:
    """Whether a background build (``load(wait=False)``) is still running."""
    return _thread is not None


def _declined_or_path() -> Path | None:
    """The cached module's path, or None (and the reason in :func:`status`) when it is not to be used."""
    global _error
    if os.environ.get("GRUKIT_TORCH_STEP", "1") == "0":
        _error = "disabled by GRUKIT_TORCH_STEP=0"
        return None
    if not _forward:
        _error = "grukit.nn.cell has not registered GRUCell.forward"
        return None
    try:
        return _path()
    except Exception as e:  # no compiler found
        _error = f"{type(e).__name__}: {e}"
        return None


def _finish(path: Path | None, background: bool = False) -> None:
    """Build (where not cached) and load the module at ``path``; in the background build, then run the ready
    hooks. Not in a load in the caller's thread: the plan asking for it (``StepPlan.enable_c``) is already
    built, and a generation bump would make it stale before its first call (which then took the general
    path: for int8 weights other numerics than the int8 step's)."""
    global _mod, _error, _tried, _thread
    try:
        if path is not None:
            if not path.exists():
                _compile(path)
            spec = importlib.util.spec_from_file_location(_NAME, path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            _init(mod)
            _mod, _error = mod, None
    except Exception as e:  # no compiler, no headers, another torch layout: the Python checks run
        _error = f"{type(e).__name__}: {e}"
        log.info("grukit: the GRUCell step's C++ checks are unavailable (%s)", _error)
    finally:
        _tried = True
        _thread = None
    if background and _mod is not None:
        for fn in _ready_hooks:
            fn()


def status() -> dict[str, Any]:
    """Whether the extension is loaded, and if not why (``{"loaded": bool, "building": bool, "error": str |
    None}``)."""
    return {"loaded": _mod is not None, "building": building(), "error": _error}
