"""The layout tables (README.md, docs/architecture.md) name paths that exist, so that a rename cannot
leave them behind."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("model", "scripts", "stacks", "lambda", "benchmarks", "web", "tests")  # where a bare name may live


def layout_paths(text: str) -> list[str]:
    """The paths in the first column, and the file or folder names quoted in the second."""
    table = text[text.index("| path | what it is |"):]
    table = table[:table.index("\n\n")]
    paths = []
    for row in table.splitlines()[2:]:
        where, what = row.strip("|").split("|", 1)
        paths += re.findall(r"`([^`]+)`", where)
        paths += [p for p in re.findall(r"`([\w./-]+)`", what) if p.endswith(("/", ".py", ".md", ".html"))]
    return paths


def missing(paths: list[str]) -> list[str]:
    return [p for p in paths if not (REPO / p).exists() and not any((REPO / f / p).exists() for f in FOLDERS)]


@pytest.mark.parametrize("doc", ["README.md", "docs/architecture.md"])
def test_every_path_in_the_layout_table_exists(doc):
    paths = layout_paths((REPO / doc).read_text())
    assert len(paths) > 10
    assert not missing(paths), f"{doc} names paths that do not exist"


def test_a_renamed_module_is_caught():
    table = "| path | what it is |\n| --- | --- |\n| `model/training.py` | the loop; see `benchmarks/` |\n\n"
    assert missing(layout_paths(table)) == ["model/training.py"]


def test_the_benchmarks_folder_holds_only_maintained_scripts():
    """One-off experiments are cited in docs/performance.md by the commit that holds them."""
    assert not list((REPO / "benchmarks").rglob("explore_*.py"))
    text, table = (REPO / "docs" / "performance.md").read_text().split("## One-off experiments (in git history)")
    cited = re.findall(r"`benchmarks/(explore_\w+\.py)` at ([0-9a-f]{7,})", text)
    assert cited
    for name, commit in cited:
        assert f"| `{name}` | {commit} |" in table, name
