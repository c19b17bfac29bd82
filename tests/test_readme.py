"""The README (what a newcomer reads first) and the getting-started page: their commands and examples hold.

The README's long sections live in docs/<area>.md; the tests of each area check those pages' numbers against
the recorded results. Here: the README opens with exactly the two set-up commands, its examples run, and every
headline number in its tour is the number on the page it links to.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _setup_commands(text: str) -> list[str]:
    head = text.split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", head, flags=re.S)


def test_layer_page_example_runs(tmp_path, monkeypatch):
    blocks = [b for b in _python_blocks((DOCS / "layer.md").read_text()) if "grukit.GRU(" in b]
    assert blocks, "docs/layer.md lost its layer usage example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "docs/layer.md", "exec"), {})


def test_readme_and_getting_started_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path in (README, DOCS / "index.md"):
        blocks = _python_blocks(path.read_text())
        assert blocks, f"{path.name} lost its example"
        for block in blocks:
            exec(compile(block, str(path.relative_to(ROOT)), "exec"), {})


def test_readme_opens_with_two_setup_commands():
    commands = _setup_commands(README.read_text())
    assert len(commands) == 2
    assert "grukit forecast" in commands[0] and "pytest" in commands[1]
    assert all("-c constraints.txt" in c for c in commands)


def test_getting_started_page_has_the_same_two_commands():
    readme = _setup_commands(README.read_text())
    page = re.findall(r"```bash\n(.*?)```", (DOCS / "index.md").read_text(), flags=re.S)
    assert page == readme


def test_readme_tour_numbers_are_on_the_linked_pages():
    """Each bold number in the tour table appears on the docs page its row links to (whose own test checks
    it against benchmarks/results/*.json), and each row names a command."""
    text = README.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "](docs/" in line]
    assert len(rows) >= 10, "the README tour table lost rows"
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        headline, command, link = cells[1], cells[2], cells[3]
        assert command.startswith("`"), f"tour row without a command: {row}"
        page = DOCS / re.search(r"\(docs/([a-z]+\.md)\)", link).group(1)
        body = page.read_text()
        for number in re.findall(r"[0-9]+\.[0-9]+", headline):
            assert number in body, f"{number} (README) is not on {page.name}"


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)", README.read_text()):
        assert (ROOT / target).exists(), f"README links to missing {target}"
