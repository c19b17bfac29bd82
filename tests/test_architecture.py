"""The layer map: which floor each grukit module sits on, and a check that no import runs up the map.

``FLOORS`` is the map, bottom floor first. It is the one copy: ``docs/architecture.md`` holds the table
:func:`render_table` makes from it (between the ``layer-map`` markers, checked below), and the import check
reads it. Print the table with ``python tests/test_architecture.py``.

Rules, checked on every ``import`` statement of every file under ``grukit/`` (the ones inside functions and
``TYPE_CHECKING`` blocks too; parsed with :mod:`ast`, nothing is imported):

1. a module imports grukit modules on its own floor or below, never above;
2. an isolated floor (the float64 reference, the independent oracle) imports no other grukit module, and no
   other grukit module imports it;
3. recipes stay apart: ``grukit.tasks.<a>`` imports no ``grukit.tasks.<b>``.

A new module falls under the entry of its package (``grukit/kernels/route.py`` sits with ``grukit.kernels``);
a new top-level module or package needs its own entry here (the test says so), and the doc's table follows.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "grukit"
DOC = ROOT / "docs" / "architecture.md"


@dataclass(frozen=True)
class Floor:
    """One floor of the map: its name, the modules on it (a package entry covers everything below it, the
    root package ``grukit`` only its ``__init__``), what it owns, and whether it is isolated (rule 2)."""

    name: str
    modules: tuple[str, ...]
    owns: str
    isolated: bool = False


FLOORS: tuple[Floor, ...] = (
    Floor(
        "plumbing",
        (
            "grukit._version",
            "grukit.errors",
            "grukit._checks",
            "grukit._io",
            "grukit._console",
            "grukit._progress",
            "grukit.datasets",
            "grukit.serialization",
        ),
        "error classes (`UserInputError`, `ShapeError`), argument checks, atomic files and path checks, "
        "the console and progress bar, where data sets live, `grukit.save`/`grukit.load` (safetensors)",
    ),
    Floor(
        "oracle",
        ("grukit.reference",),
        "the float64 NumPy reference every numeric test compares against: imports nothing from grukit, "
        "and nothing in grukit imports it",
        isolated=True,
    ),
    Floor(
        "functional",
        ("grukit.functional",),
        "the math floor: the GRU, variant and minGRU equations and the composite time loop, plain "
        "differentiable torch ops",
    ),
    Floor(
        "kernels",
        ("grukit.kernels",),
        "`dispatch` and every other path a sequence can take: the fused C++ CPU kernel and its build, the "
        "streaming step, the `grukit::gru_sequence` op, the ONNX symbolic, torch's own cuDNN GRU",
    ),
    Floor(
        "nn",
        ("grukit.nn",),
        "the layers (`GRU`, `GRUCell`, `MinGRU`, `Streamer`, `quantize`): argument handling, "
        "parameters, the layer driver, the route a call takes",
    ),
    Floor(
        "interop",
        ("grukit.interop",),
        "weights to and from torch, Keras and ONNX; `GRUChain` for stacks that `GRU` cannot hold",
    ),
    Floor(
        "api",
        ("grukit",),
        "the public face `import grukit` (its `__init__` only): re-exports from nn, interop and "
        "serialization",
    ),
    Floor(
        "train",
        ("grukit.train",),
        "the training toolkit: `fit` (Lightning), `TaskModule`, run folders and resume, seeding, the "
        "shared CLI options and the recipe contract (`grukit.train.recipe`; the train functions' shared "
        "set-up, `grukit.train.recipe_run`)",
    ),
    Floor(
        "tasks",
        ("grukit.tasks", "grukit.forecast"),
        "the recipes, one package each (data, model, train, evaluate, cli); `grukit.forecast` is the "
        "public face of the forecasting recipe",
    ),
    Floor(
        "cli",
        ("grukit.cli",),
        "the `grukit` command: registers every recipe's typer app, non-recipe verbs (`convert`), one-line "
        "errors and exit codes",
    ),
)

# Entries whose module is still to come from another open issue (the map is ready for them).
PLANNED: dict[str, str] = {}

RECIPES_PACKAGE = "grukit.tasks"


def floor_index(module: str) -> int | None:
    """The index in FLOORS of the floor ``module`` sits on (its longest entry), or None if none covers it."""
    best, best_len = None, -1
    for i, floor in enumerate(FLOORS):
        for entry in floor.modules:
            covers = module == entry or (entry != "grukit" and module.startswith(entry + "."))
            if covers and len(entry) > best_len:
                best, best_len = i, len(entry)
    return best


def module_name(path: Path, root: Path = ROOT) -> str:
    """``grukit/nn/gru.py`` → ``grukit.nn.gru``; ``grukit/nn/__init__.py`` → ``grukit.nn``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p, package.parent): p for p in sorted(package.rglob("*.py"))}


def imported_modules(
    source: str, module: str, is_package: bool, known: set[str] | frozenset[str] = frozenset()
) -> list[tuple[int, str]]:
    """The grukit modules a source imports, as ``(line, dotted name)``, from every import statement.

    Relative imports are resolved against ``module``; ``from X import name`` names the submodule
    ``X.name`` when that is a module in ``known``, else ``X``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _in_package(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    raise ValueError(f"{module}:{node.lineno}: relative import beyond the package")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if not _in_package(base):
                continue
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            found += [(node.lineno, s) for s in subs] or [(node.lineno, base)]
    return found


def _in_package(name: str) -> bool:
    return name == "grukit" or name.startswith("grukit.")


def _recipe(module: str) -> str | None:
    prefix = RECIPES_PACKAGE + "."
    return module[len(prefix) :].split(".")[0] if module.startswith(prefix) else None


def violations(
    source: str,
    module: str,
    is_package: bool = False,
    known: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """Every import of ``source`` (the text of module ``module``) that breaks a rule of the map, one line each."""
    here = floor_index(module)
    if here is None:
        return [f"{module}: on no floor; add it to FLOORS in tests/test_architecture.py"]
    out = []
    for line, target in imported_modules(source, module, is_package, known):
        there = floor_index(target)
        if there is None or target == module:
            continue
        where = f"{module}:{line} imports {target}"
        if there > here:
            out.append(
                f"{where}: up the map ({FLOORS[here].name} → {FLOORS[there].name}); move the shared "
                f"piece down to {FLOORS[here].name} or below"
            )
        if there != here and (FLOORS[here].isolated or FLOORS[there].isolated):
            iso = FLOORS[here] if FLOORS[here].isolated else FLOORS[there]
            out.append(
                f"{where}: the {iso.name} floor is isolated (imports none, imported by none)"
            )
        mine, theirs = _recipe(module), _recipe(target)
        if mine and theirs and mine != theirs:
            out.append(
                f"{where}: one recipe imports another; move the shared piece into grukit.train"
            )
    return out


def render_table() -> str:
    """The map as the markdown table of docs/architecture.md, top floor first."""
    rows = ["| floor | modules | owns |", "| --- | --- | --- |"]
    for floor in reversed(FLOORS):
        mods = ", ".join(f"`{m}`" for m in floor.modules)
        rows.append(f"| {floor.name} | {mods} | {floor.owns} |")
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------------ tests


def test_every_module_sits_on_a_floor_and_every_entry_names_a_module():
    mods = package_modules()
    homeless = [m for m in mods if floor_index(m) is None]
    assert not homeless, f"modules on no floor (add them to FLOORS): {homeless}"
    entries = [e for f in FLOORS for e in f.modules]
    assert len(entries) == len(set(entries)), "a module is on two floors"
    stale = [
        e
        for e in entries
        if e not in PLANNED and not any(m == e or m.startswith(e + ".") for m in mods)
    ]
    assert not stale, f"FLOORS names modules that do not exist: {stale}"


def test_no_import_runs_up_the_map():
    mods = package_modules()
    known = set(mods)
    found = []
    for name, path in mods.items():
        found += violations(path.read_text(), name, path.name == "__init__.py", known)
    assert not found, "\n".join(found)


def test_the_doc_shows_the_map():
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"<!-- layer-map:start -->\n(.*?)\n<!-- layer-map:end -->", text, flags=re.S)
    assert m, "docs/architecture.md lost its layer-map markers"
    assert m.group(1).strip() == render_table(), (
        "docs/architecture.md's table differs from FLOORS; paste `python tests/test_architecture.py`"
    )


@pytest.mark.parametrize(
    "module,is_package,source,expected",
    [
        # up the map, at module level and lazily inside a function
        ("grukit.nn.fake", False, "from ..train import fit\n", "up the map (nn → train)"),
        ("grukit.functional.fake", False, "def f():\n    import grukit.cli\n", "functional → cli"),
        ("grukit.kernels", True, "from ..nn import GRU\n", "kernels → nn"),
        ("grukit.train.fake", False, "from grukit.tasks.music import data\n", "train → tasks"),
        ("grukit.interop.fake", False, "import grukit\n", "interop → api"),
        ("grukit.errors", False, "from .serialization import load\nfrom .nn import GRU\n", "→ nn"),
        # the oracle imports nothing and is imported by nothing
        ("grukit.reference.fake", False, "from ..functional import gru\n", "isolated"),
        ("grukit.nn.fake", False, "from ..reference import variant_gru\n", "isolated"),
        # recipes apart
        ("grukit.tasks.music.fake", False, "from ..text.data import load_text\n", "recipe"),
        # a module on no floor
        ("grukit.newthing", False, "", "on no floor"),
    ],
)
def test_a_broken_map_is_caught(module, is_package, source, expected):
    found = violations(source, module, is_package, set(package_modules()))
    assert found and any(expected in v for v in found), found


@pytest.mark.parametrize(
    "module,source",
    [
        (
            "grukit.tasks.music.fake",
            "from ...train import fit\nfrom ...nn import GRU\nimport grukit\n",
        ),
        (
            "grukit.nn.fake",
            "from ..kernels import dispatch\nfrom .. import _checks\nfrom .gru import GRU\n",
        ),
        ("grukit.cli.fake", "import grukit.tasks.text.cli\nfrom ..interop import from_torch\n"),
        ("grukit.reference.fake", "from . import variants\nimport numpy\n"),
        ("grukit.tasks.music.fake", "from . import data\nfrom .model import MusicGRU\n"),
    ],
)
def test_imports_down_or_sideways_pass(module, source):
    assert violations(source, module, False, set(package_modules())) == []


def test_relative_imports_resolve():
    known = set(package_modules())
    src = "from ... import serialization\nfrom .. import _checks\nfrom .data import x\nfrom . import y\n"
    got = [t for _, t in imported_modules(src, "grukit.tasks.text.train", False, known)]
    assert got == [
        "grukit.serialization",
        "grukit.tasks",
        "grukit.tasks.text.data",
        "grukit.tasks.text",
    ]


if __name__ == "__main__":
    sys.stdout.write(render_table() + "\n")
