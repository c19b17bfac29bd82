"""The GRUCell streaming step's per-call checks in C++ (``csrc/torch_step.cpp``), an optional CPython extension.

At batch 1 and H = 256 the native step takes ~13 µs and the checks ``GRUCell.__call__`` and
:meth:`grukit.kernels.stream.StepPlan.cell` make in Python another ~5 µs (Zen 4): hooks, no graph capture
or transform, x and h plain contiguous CPU float32 tensors of the plan's shapes, no autograd needed, the
weights the same tensors with the same data pointer and version. This extension makes the same checks in
C++, allocates the output and calls the kernel library's ``grukit_step``; when any check fails it returns
None and the Python path runs (and raises its errors for bad input). It is an accelerator only: results
are those of the same native step.

Unlike the kernel library (no torch or Python headers; ``_build.py``), it is compiled against the installed
torch's headers, with ``$CXX`` (or g++/c++/clang++), on first use (~15-30 s, once), into
``$GRUKIT_CACHE_DIR/torch_step/<hash>/`` (the hash covers the source, torch's version, Python's and the
compiler). Where that fails (no compiler, no headers) the Python path runs, as it does with
``GRUKIT_TORCH_STEP=0``. :func:`status` says which.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import subprocess
import sys
import sysconfig
import tempfile
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
_tried = False
_forward: list[Any] = []  # GRUCell.forward, registered by grukit.nn.cell (the layer above this one)


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
    path.parent.mkdir(parents=True, exist_ok=True)
    log.warning(
        "grukit: compiling the GRUCell step's C++ checks once (~15-30 s); caching them in %s",
        path.parent,
    )
    fd, tmp = tempfile.mkstemp(suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        proc = subprocess.run(_command(tmp), capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise _build.BuildError(
                f"compiling {SOURCE.name} failed: {proc.stderr.strip()[-2000:]}"
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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


def load() -> ModuleType | None:
    """The extension module (built on first use), or None where it cannot be built or is disabled."""
    global _mod, _error, _tried
    if _tried:
        return _mod
    _tried = True
    if os.environ.get("GRUKIT_TORCH_STEP", "1") == "0":
        _error = "disabled by GRUKIT_TORCH_STEP=0"
        return None
    if not _forward:
        _error = "grukit.nn.cell has not registered GRUCell.forward"
        return None
    try:
        path = _path()
        if not path.exists():
            _compile(path)
        spec = importlib.util.spec_from_file_location(_NAME, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _init(mod)
        _mod = mod
    except Exception as e:  # no compiler, no headers, another torch layout: the Python checks run
        _error = f"{type(e).__name__}: {e}"
        log.info("grukit: the GRUCell step's C++ checks are unavailable (%s)", _error)
    return _mod


def status() -> dict[str, Any]:
    """Whether the extension is loaded, and if not why (``{"loaded": bool, "error": str | None}``)."""
    return {"loaded": _mod is not None, "error": _error}
