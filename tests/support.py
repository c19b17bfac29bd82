"""Plumbing shared by the whole test suite: one CLI runner, one parameter randomiser, the oracles' glue.

Import it from any test file as ``from support import ...`` (``tests/`` is on ``sys.path`` because
``tests/conftest.py`` lives there), or use the fixtures ``tests/conftest.py`` builds on it (``cli``,
``cli_subprocess``). Keep helpers here only when two or more test folders need them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class CliResult:
    """What one ``grukit ...`` call gave: its exit code and what it printed."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """The non-empty lines of stderr (a user mistake prints exactly one)."""
        return [line for line in self.err.splitlines() if line.strip()]

    def __iter__(self):  # allows ``code, out, err = cli(...)``
        return iter((self.code, self.out, self.err))


def exit_code(e: SystemExit) -> int:
    """The exit status a shell would see for a ``SystemExit``."""
    if e.code is None:
        return 0
    return e.code if isinstance(e.code, int) else 1


def run_cli_inprocess(capsys, monkeypatch, *args: object) -> CliResult:
    """Run ``grukit ARGS`` in this process through the console entry point (``grukit.cli.main``).

    ``capsys`` and ``monkeypatch`` are pytest's fixtures; prefer the ``cli`` fixture, which binds them.
    """
    from grukit.cli import main

    capsys.readouterr()  # drop what earlier steps of the test printed
    monkeypatch.setattr(sys, "argv", ["grukit", *map(os.fspath, map(_as_path_like, args))])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = exit_code(e)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def run_cli_subprocess(
    *args: object,
    cwd: os.PathLike[str] | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> CliResult:
    """Run ``grukit ARGS`` in a fresh interpreter (for signals, kill -9, import-time behaviour).

    ``env`` entries are added to (not substituted for) this process's environment.
    """
    full_env = {**os.environ, **(env or {})}
    r = subprocess.run(
        [sys.executable, "-c", "from grukit.cli import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
    )
    return CliResult(r.returncode, r.stdout, r.stderr)


def _as_path_like(a: object) -> str | os.PathLike[str]:
    return a if isinstance(a, os.PathLike) else str(a)


def randomize(
    module: torch.nn.Module,
    scale: float = 0.5,
    seed: int = 0,
    dist: str = "normal",
) -> torch.nn.Module:
    """Give every parameter (biases included) random non-zero values, so layout bugs cannot hide.

    Args:
        module: changed in place and returned.
        scale: standard deviation (``"normal"``) or half-width (``"uniform"``).
        seed: the generator's seed; the same seed gives the same values for the same shapes.
        dist: ``"normal"`` or ``"uniform"`` (uniform on (-scale, scale)).
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if dist == "normal":
                v = torch.randn(p.shape, generator=g, dtype=torch.float64)
            elif dist == "uniform":
                v = torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1
            else:
                raise ValueError(f"dist must be 'normal' or 'uniform', got {dist!r}")
            p.copy_((v * scale).to(p.dtype))
    return module


def numpy_params(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """The module's state dict as float64 NumPy arrays (the reference's parameter format)."""
    return {k: v.detach().cpu().double().numpy() for k, v in module.state_dict().items()}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b| / max |b| (the gradient comparison of docs/conventions.md)."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def files_under(path: os.PathLike[str] | str) -> list[str]:
    """Every file below ``path``, relative and sorted (to assert what a failed run left on disk)."""
    p = Path(path)
    if not p.exists():
        return []
    return sorted(str(f.relative_to(p)) for f in p.rglob("*") if f.is_file())


def one_line_error(result: CliResult, *needles: str | Iterable[str]) -> str:
    """Assert a clean refusal: exit 2, exactly one stderr line, no traceback; return the line."""
    assert result.code == 2, (result.code, result.err[-2000:])
    lines = result.err_lines
    assert len(lines) == 1, result.err[-2000:]
    assert "Traceback" not in result.err
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]
