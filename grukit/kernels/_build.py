"""Find (or build) the native kernel library for this CPU and load it with ctypes.

The C++ sources (``csrc/gru_fused.cpp``: the sequence loops; ``csrc/gru_stream.cpp``: the small-batch
streaming step, float32 and bfloat16 weights; ``csrc/gru_int8.cpp``: the same step for int8 weights; the
variants' loops and the bf16 GEMMs) work on raw pointers and build into one library that needs no
torch or Python headers. It is compiled once per instruction-set level: on x86-64 ``x86-64-v2`` (SSE4.2),
``x86-64-v3`` (AVX2, FMA) and ``x86-64-v4`` (AVX-512); elsewhere (aarch64, ...) one ``generic`` build. At
load time the best level this CPU runs is chosen (:func:`cpu_level`; ``GRUKIT_CPU_LEVEL`` forces a lower
one); the AVX-512 and AVX-512-BF16 streaming paths inside are chosen at run time on top of that.

Where the library comes from (``grukit.kernels.status()["source"]``):

- ``"wheel"``: built at install time by CMake through scikit-build-core (``CMakeLists.txt``) into
  ``grukit/kernels/_native/`` — no compiler is needed on the machine that runs it;
- ``"jit"``: installs without it (no compiler at install time, ``GRUKIT_NO_BUILD=1``, a plain source
  checkout) compile the level this CPU needs at first use with ``$CXX`` (or g++/c++/clang++), into
  ``$GRUKIT_CACHE_DIR`` (default ``~/.cache/grukit``)``/kernels/<hash>/``, the hash covering the sources,
  the compiler, the flags and the level (not the exact CPU: nodes of a cluster at the same level share it).

OpenMP is used when the compiler has it (the library then needs ``libgomp.so.1``, which torch's own wheel
ships and has loaded already: one OpenMP runtime in the process; it is never bundled); without it the loops
run single-threaded. Set ``GRUKIT_NO_FUSED=1`` to skip the native kernel entirely.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("grukit.kernels")

_HERE = Path(__file__).resolve().parent
_CSRC = _HERE / "csrc"
#: the sources compiled into the one library: the sequence loops, the small-batch streaming step, the
#: variants' loops (layer norm, recurrent dropout, zoneout), the bf16 GEMM and loops for CPU autocast, the
#: int8-weight streaming step, the AVX-512 bf16 conversion of transposed operands
SOURCES = [
    _CSRC / "gru_fused.cpp",
    _CSRC / "gru_stream.cpp",
    _CSRC / "gru_variants.cpp",
    _CSRC / "gru_bf16.cpp",
    _CSRC / "gru_int8.cpp",
    _CSRC / "gru_bf16_cvt.cpp",
]
#: headers the sources include (hashed with them: a change rebuilds the library)
HEADERS = [_CSRC / "gru_simd.h", _CSRC / "gru_abi.h", _CSRC / "gru_bf16_cvt.h"]
#: x86-64 levels, best first (the wheel has one library per level)
X86_LEVELS = ("x86-64-v4", "x86-64-v3", "x86-64-v2")
#: flags common to every level (the level adds ``-march=<level>``; "generic" adds nothing)
BASE_FLAGS = ["-O3", "-shared", "-fPIC", "-std=c++17", "-Wno-psabi"]


def _abi_version() -> int:
    """The ABI version the sources declare (``csrc/gru_abi.h``, the one place it is set)."""
    import re

    text = (_CSRC / "gru_abi.h").read_text()
    m = re.search(r"^#define GRUKIT_ABI_VERSION (\d+)$", text, re.M)
    if m is None:
        raise RuntimeError(f"{_CSRC / 'gru_abi.h'} does not define GRUKIT_ABI_VERSION")
    return int(m.group(1))


#: the ABI the ctypes signatures expect; a library reporting another is rebuilt or refused
ABI_VERSION = _abi_version()

#: what :func:`load` loaded: source ("wheel" / "jit"), path, isa
loaded: dict[str, Any] = {"source": None, "path": None, "isa": None}


class BuildError(RuntimeError):
    """The native kernel could not be built or loaded."""


def cache_dir() -> Path:
    root = os.environ.get("GRUKIT_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "grukit"


def _suffix() -> str:
    if sys.platform == "darwin":
        return ".dylib"
    if sys.platform == "win32":
        return ".dll"
    return ".so"


def library_name(isa: str) -> str:
    """The file name of the library built for ``isa`` (CMakeLists.txt uses the same names)."""
    prefix = "" if sys.platform == "win32" else "lib"
    return f"{prefix}grukit_kernels.{isa}{_suffix()}"


def _is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "x64")


# the CPU flags (as /proc/cpuinfo names them) each level needs on top of the one below
_LEVEL_FLAGS = {
    "x86-64-v2": {"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"},
    "x86-64-v3": {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"},
    "x86-64-v4": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
}


def _cpu_flags() -> set[str] | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def _detected_level() -> str:
    if not _is_x86_64():
        return "generic"
    flags = _cpu_flags()
    if (
        flags is None
    ):  # not Linux: the lowest level the wheel ships (macOS/Windows x86 are untested)
        return "x86-64-v2"
    best = "generic"
    for level in ("x86-64-v2", "x86-64-v3", "x86-64-v4"):
        if not _LEVEL_FLAGS[level] <= flags:
            break
        best = level
    return best


def cpu_level() -> str:
    """The instruction-set level the kernel is loaded for: "x86-64-v4/v3/v2", or "generic".

    ``GRUKIT_CPU_LEVEL`` forces a level (tests use it to run every path); a level above what the CPU
    runs raises :class:`BuildError` when the kernel loads.
    """
    forced = os.environ.get("GRUKIT_CPU_LEVEL", "").strip()
    return forced or _detected_level()


def _levels_to_try(level: str) -> list[str]:
    """The libraries that may serve ``level``, best first."""
    if level in X86_LEVELS:
        return list(X86_LEVELS[X86_LEVELS.index(level) :])
    return [level]


def _check_level(level: str) -> None:
    if level not in (*X86_LEVELS, "generic"):
        raise BuildError(
            f"GRUKIT_CPU_LEVEL must be one of {(*X86_LEVELS, 'generic')}, got {level!r}"
        )
    detected = _detected_level()
    order = ["generic", *reversed(X86_LEVELS)]
    if level in X86_LEVELS and (
        detected not in X86_LEVELS or order.index(level) > order.index(detected)
    ):
        raise BuildError(f"this CPU does not run {level} code (it runs {detected})")


def _flags(level: str, openmp: bool) -> list[str]:
    flags = list(BASE_FLAGS)
    if level != "generic":
        flags.append(f"-march={level}")
    flags.append(f'-DGRUKIT_ISA="{level}"')
    if openmp:
        flags.append("-fopenmp")
    return flags


def wheel_library(level: str | None = None) -> Path | None:
    """The library the installed package carries for ``level`` (or the best for this CPU), else None."""
    level = level or cpu_level()
    for cand in _levels_to_try(level):
        for d in _native_dirs():
            f = d / library_name(cand)
            if f.exists():
                return f
    return None


def _native_dirs() -> list[Path]:
    """Folders that may hold built libraries: ``_native`` next to this file and beside every entry of the
    package's ``__path__`` (an editable install keeps the built files apart from the sources)."""
    dirs = [_HERE / "_native"]
    try:
        from grukit import kernels

        for p in getattr(kernels, "__path__", []):
            d = Path(p) / "_native"
            if d not in dirs:
                dirs.append(d)
    except Exception:
        pass
    return dirs


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


def _compiler_has_openmp(cxx: str) -> bool:
    """Whether ``cxx -fopenmp`` compiles and links a shared object (Apple clang has no OpenMP)."""
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "omp.cpp"
        src.write_text('#include <omp.h>\nextern "C" int f() { return omp_get_max_threads(); }\n')
        try:
            proc = subprocess.run(
                [cxx, "-fopenmp", "-shared", "-fPIC", str(src), "-o", str(Path(d) / "omp.so")],
                capture_output=True,
                timeout=120,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return proc.returncode == 0


def library_path(level: str | None = None) -> tuple[Path, list[str]]:
    """Where the cached JIT library for this source/compiler/level lives, and the command that builds it."""
    level = level or cpu_level()
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
        cxx.encode(),
        version.encode(),
        " ".join(BASE_FLAGS).encode(),
        level.encode(),
        platform.machine().encode(),
    ):
        key.update(part)
        key.update(b"\0")
    path = cache_dir() / "kernels" / key.hexdigest()[:16] / library_name(level)
    return path, [cxx, *_flags(level, False), *(str(s) for s in SOURCES), "-o"]


def build(force: bool = False, level: str | None = None) -> Path:
    """Compile the kernel for ``level`` into the cache (atomically: concurrent first uses do not clash)."""
    path, cmd = library_path(level)
    if path.exists() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log.warning(
        "grukit: compiling the fused CPU GRU kernel once (a few seconds); caching it in %s",
        path.parent,
    )
    if _compiler_has_openmp(cmd[0]):
        cmd = [*cmd[:-1], "-fopenmp", cmd[-1]]
    fd, tmp = tempfile.mkstemp(suffix=_suffix(), dir=path.parent)
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


def find_or_build(level: str | None = None) -> tuple[Path, str]:
    """The library to load for ``level`` (default: this CPU's) and where it came from ("wheel" / "jit")."""
    level = level or cpu_level()
    _check_level(level)
    found = wheel_library(level)
    if found is not None:
        return found, "wheel"
    return build(level=level), "jit"


def open_library(path: Path) -> ctypes.CDLL:
    """Load a kernel library and declare its entry points' argument types."""
    import torch  # noqa: F401  (torch's libgomp must be loaded first so the kernel shares its OpenMP runtime)

    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise BuildError(f"cannot load {path}: {e}") from e
    if lib.grukit_abi_version() != ABI_VERSION:
        raise BuildError(f"{path} has ABI {lib.grukit_abi_version()}, expected {ABI_VERSION}")
    i, p, lg = ctypes.c_int, ctypes.c_void_p, ctypes.c_long
    lib.grukit_isa.restype = ctypes.c_char_p
    lib.grukit_isa.argtypes = []
    lib.grukit_has_openmp.restype = i
    lib.grukit_cpu_level.restype = i
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
    lib.grukit_step_i8.argtypes = [p, i, p, p, p, p]
    lib.grukit_step_i8.restype = i
    lib.grukit_step_i8_best_path.argtypes = []
    lib.grukit_step_i8_best_path.restype = i
    lib.grukit_step_i8_path_ok.argtypes = [i]
    lib.grukit_step_i8_path_ok.restype = i
    lib.grukit_step_i8_max_k.argtypes = []
    lib.grukit_step_i8_max_k.restype = i
    return lib


def load(level: str | None = None) -> ctypes.CDLL:
    """Find the wheel's library for this CPU (or build one) and load it; records :data:`loaded`."""
    path, source = find_or_build(level)
    lib = open_library(path)
    loaded.update(source=source, path=str(path), isa=lib.grukit_isa().decode())
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
