"""The documentation site: its API pages cover every public name, and its navigation lists every page.

(`mkdocs build --strict`, run by .ci/run, checks links, anchors and that each `:::` reference resolves.)
"""

import re
from pathlib import Path

import yaml

import grukit

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _documented() -> set[str]:
    names: set[str] = set()
    for page in DOCS.glob("api*.md"):
        names |= set(re.findall(r"^::: (\S+)\s*$", page.read_text(), flags=re.M))
    return names


def test_api_pages_cover_every_name_in_grukit_all():
    documented = _documented()
    missing = [name for name in grukit.__all__ if f"grukit.{name}" not in documented]
    assert not missing, f"names of grukit.__all__ without an entry in docs/api*.md: {missing}"


def test_every_page_is_in_the_navigation():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(nav):
        for item in nav:
            for value in item.values() if isinstance(item, dict) else [item]:
                yield from pages(value) if isinstance(value, list) else [value]

    assert sorted(pages(config["nav"])) == sorted(p.name for p in DOCS.glob("*.md"))


def test_api_pages_cover_the_toolkit():
    import grukit.train

    documented = {
        ref.rsplit(".", 1)[-1] for ref in _documented() if ref.startswith("grukit.train.")
    }
    missing = [name for name in grukit.train.__all__ if name not in documented]
    assert not missing, (
        f"names of grukit.train.__all__ without an entry in docs/api-train.md: {missing}"
    )
