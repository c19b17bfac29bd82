"""The README's usage example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_layer_example_runs(tmp_path, monkeypatch):
    blocks = [b for b in _python_blocks(README.read_text()) if "grukit.GRU(" in b]
    assert blocks, "README lost its layer usage example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {})


def test_readme_opens_with_two_setup_commands():
    text = README.read_text()
    head = text.split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", head, flags=re.S)
    assert len(commands) == 2
    assert "grukit forecast" in commands[0] and "pytest" in commands[1]
    assert all("-c constraints.txt" in c for c in commands)
