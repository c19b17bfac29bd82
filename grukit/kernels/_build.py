"""Build the native fused kernel at first use and load it with ctypes.

The C++ sources (``csrc/gru_fused.cpp``: the sequence loops; ``csrc/gru_stream.cpp``: the small-batch
streaming step, float32 and bfloat16 weights) work on raw pointers and build into one library, so building it
needs only a C++ compiler with OpenMP — no torch headers, nothing at install time. The shared library is cached under
``$GRUKIT_CACHE_DIR`` (default ``~/.cache/grukit``)``/kernels/<hash>/``, the hash covering the sources, the
compiler, its flags and the CPU (the build uses ``-march=native``); later imports load it directly.
Set ``GRUKIT_NO_FUSED=1`` to skip the native kernel entirely (the composite path then runs everything).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("grukit.kernels")

_CSRC = Path(__file__).resolve().parent / "csrc"
#: the sources compiled into the one library: the sequence loops, the small-batch streaming step
SOURCES = [_CSRC / "gru_fused.cpp", _CSRC / "gru_stream.cpp"]
#: headers the sources include (hashed with them: a change rebuilds the library)
HEADERS = [_CSRC / "gru_simd.h"]
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17"]
ABI_VERSION = 5


class BuildError(RuntimeError):
    """The native kernel could not be built or loaded."""


def cache_dir() -> Path:
    root = os.environ.get("GRUKIT_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "grukit"


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def _compiler() -> str:
    cxx = (
        os.environ.get("CXX")
        or shutil.which("g++")
        or shutil.which("c++")
        or shutil.which("clang++")
    )
    if not cxx:
        raise BuildError("no C++ compiler found (looked for $CXX, g++, c++, clang++)")
    return cxx


def _names() -> str:
    return ", ".join(src.name for src in SOURCES)


def library_path() -> tuple[Path, list[str]]:
    """Where the cached library for this source/compiler/CPU lives, and the command that builds it."""
    cxx = _compiler()
    try:
        version = subprocess.run(
            [cxx, "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise BuildError(f"cannot run the C++ compiler {cxx}: {e}") from e
    key = hashlib.sha256()
    for part in (
        *(src.read_bytes() for src in (*SOURCES, *HEADERS)),
        version.encode(),
        " ".join(FLAGS).encode(),
        _cpu_signature().encode(),
        platform.machine().encode(),
    ):
        key.update(part)
        key.update(b"\0")
    path = cache_dir() / "kernels" / key.hexdigest()[:16] / "libgrukit_fused.so"
    return path, [cxx, *FLAGS, *(str(src) for src in SOURCES), "-o"]


def build(force: bool = False) -> Path:
    """Compile the kernel into the cache (atomically: concurrent first uses do not clash); return its path."""
    path, cmd = library_path()
    if path.exists() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log.warning(
        "grukit: compiling the fused CPU GRU kernel once (a few seconds); caching it in %s",
        path.parent,
    )
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        proc = subprocess.run([*cmd, tmp], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise BuildError(f"compiling {_names()} failed: {proc.stderr.strip()[-2000:]}")
        os.replace(tmp, path)
    except (OSError, subprocess.SubprocessError) as e:
        raise BuildError(f"compiling {_names()} failed: {e}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load() -> ctypes.CDLL:
    """Build if needed and load the kernel library, with argument types declared."""
    import torch  # noqa: F401  (torch's libgomp must be loaded first so the kernel shares its OpenMP runtime)

    path = build()
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise BuildError(f"cannot load {path}: {e}") from e
    if lib.grukit_abi_version() != ABI_VERSION:
        raise BuildError(f"{path} has ABI {lib.grukit_abi_version()}, expected {ABI_VERSION}")
    i, p, lg = ctypes.c_int, ctypes.c_void_p, ctypes.c_long
    lib.grukit_set_mkl_pack.argtypes = [p, p, p]
    lib.grukit_set_mkl_pack.restype = None
    for suf in ("f32", "f64"):
        fwd = getattr(lib, f"grukit_fwd_{suf}")
        fwd.argtypes = [i, i, i, p, p, p, p, p, i, i, p, p, p, p, i, i, p]
        fwd.restype = i
        bwd = getattr(lib, f"grukit_bwd_{suf}")
        bwd.argtypes = [i, i, i, p, p, i, i, p, lg, lg, p, p, p, p, p, p, p, p, p, i, i, p]
        bwd.restype = i
        cell = getattr(lib, f"grukit_cell_{suf}")
        cell.argtypes = [i, i, i, p, p, p, p, p, p, i, p, p, p]
        cell.restype = None
        stream = getattr(lib, f"grukit_stream_{suf}")
        stream.argtypes = [i, i, i, i, p, p, p, i, p, p]
        stream.restype = None
        loop = getattr(lib, f"grukit_gemm_loop_{suf}")
        loop.argtypes = [i, i, i, i, i, p, i, p, ctypes.c_long, i, p, ctypes.c_long, i, p]
        loop.restype = None
    lib.grukit_step.argtypes = [p, i, p, p, p, p]
    lib.grukit_step.restype = i
    lib.grukit_step_best_path.argtypes = [i]
    lib.grukit_step_best_path.restype = i
    lib.grukit_step_path_ok.argtypes = [i]
    lib.grukit_step_path_ok.restype = i
    return lib


def _torch_blas_lib() -> Any:
    import torch

    libdir = Path(torch.__file__).resolve().parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib", "libtorch.so"):
        f = libdir / name
        if f.exists():
            try:
                return ctypes.CDLL(str(f))
            except OSError:
                continue
    return None


def mkl_pack() -> tuple[int | None, int | None, int | None]:
    """Addresses of MKL's ``cblas_sgemm_pack_get_size``/``cblas_sgemm_pack``/``cblas_sgemm_compute`` in torch's
    library (None where absent, e.g. a torch built on OpenBLAS): the kernel packs W_hh once per call with them."""
    tl = _torch_blas_lib()
    out = []
    for name in ("cblas_sgemm_pack_get_size", "cblas_sgemm_pack", "cblas_sgemm_compute"):
        try:
            out.append(ctypes.cast(getattr(tl, name), ctypes.c_void_p).value)
        except (AttributeError, TypeError):
            return None, None, None
    return tuple(out)  # type: ignore[return-value]


def blas_gemm() -> tuple[int | None, int | None]:
    """Addresses of the Fortran ``sgemm_``/``dgemm_`` inside torch's own BLAS (MKL in the CPU wheels), or None.

    The kernel calls them for the per-step recurrent product at larger batches; without them it uses its own
    matrix-vector code for every batch size.
    """
    tl = _torch_blas_lib()
    try:
        return (
            ctypes.cast(tl.sgemm_, ctypes.c_void_p).value,
            ctypes.cast(tl.dgemm_, ctypes.c_void_p).value,
        )
    except AttributeError:
        return None, None
