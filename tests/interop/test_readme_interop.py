"""The Interop page's examples (docs/interop.md, moved there from the README) run as written."""

import re
from pathlib import Path

from ._util import keras_stack

PAGE = Path(__file__).resolve().parents[2] / "docs" / "interop.md"


def test_interop_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 4
    monkeypatch.chdir(tmp_path)
    keras_stack(8, 16, 1, False, True).save("model.keras")  # the file the Keras example reads
    for block in blocks:
        exec(compile(block, "docs/interop.md", "exec"), {})
