"""The runnable examples: the doctests of the documented public modules, and the Python blocks of the docs
pages that are cheap to run (the README's and the getting-started page's are in test_readme.py, the Interop
page's in tests/interop/test_readme_interop.py)."""

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Modules whose public docstrings carry runnable Google-style examples (examples that write files write them
# into the test's tmp working folder).
MODULES = [
    "grukit.nn.gru",
    "grukit.nn.cell",
    "grukit.nn.mingru",
    "grukit.kernels.export",
    "grukit.interop.torch",
    "grukit.interop.keras",
    "grukit.interop.onnx",
    "grukit.interop.chain",
    "grukit.serialization",
    "grukit.datasets",
    "grukit.train.seed",
    "grukit.train.run",
    "grukit.train.plots",
    "grukit.train.options",
    "grukit.train.module",
    "grukit.train.loop",
    "grukit.tasks.forecast.calibrate",
    "grukit.tasks.forecast.ensemble",
    "grukit.tasks.forecast.estimator",
    "grukit.tasks.forecast.windows",
    "grukit.tasks.forecast.writing",
    "grukit.tasks.forecast.tables",
    "grukit.forecast",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(module) if t.examples and t.name.startswith(name)]
    assert tests, f"{name} has no docstring examples"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


# Pages whose Python blocks run here. Not run: forecast.md (trains forecasters for minutes; the recipe's own
# tests cover that API) and toolkit.md (a sketch around the reader's own `train_ds`/`val_ds`; the same
# calls run in the fit docstring example above).
PAGES = ["layer.md", "variants.md"]


@pytest.mark.parametrize("page", PAGES)
def test_docs_page_examples_run(page, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / page).read_text(), flags=re.S)
    assert blocks, f"docs/{page} has no Python example"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, f"docs/{page}", "exec"), {})
