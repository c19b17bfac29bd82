"""The README's Interop examples run as written."""

import re
from pathlib import Path

from ._util import keras_stack

README = Path(__file__).resolve().parents[2] / "README.md"


def test_interop_examples_run(tmp_path, monkeypatch):
    section = README.read_text().split("\n## Interop\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 4
    monkeypatch.chdir(tmp_path)
    keras_stack(8, 16, 1, False, True).save("model.keras")  # the file the Keras example reads
    for block in blocks:
        exec(compile(block, "README.md#interop", "exec"), {})
