"""The README and docs/: the commands match what CI runs, every link resolves, and the sources cite only files of
the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = [
    p for folder in ("cnnxai", "lime_ext", "cam_ext", "bench", "tests") for p in (ROOT / folder).rglob("*.py")
]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def ci_command() -> str:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")][-1]


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return found


def test_ci_runs_the_readme_test_command():
    command = ci_command()
    assert "pytest" in command and "requirements-dev.txt" in command
    assert f"\n{command}\n" in (ROOT / "README.md").read_text()
    assert f"\n{command}\n" in (ROOT / "docs" / "cli.md").read_text()


def test_the_readme_run_command_is_the_manual_s():
    command = "python -m pip install -r requirements.txt && python GradLIME.py"
    assert f"\n{command}\n" in (ROOT / "README.md").read_text()
    assert f"\n{command}\n" in (ROOT / "docs" / "cli.md").read_text()


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_of_the_manual_resolves(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name}: {target}: no such heading"


def test_sources_cite_only_files_of_the_repository():
    cited = re.compile(r"(docs/[\w\-]+\.md)(#[\w\-]+)?")
    for source in SOURCES:
        if source.name == "test_readme.py":
            continue
        text = source.read_text()
        assert "algorithms.md" not in text, (
            f"{source.relative_to(ROOT)} cites a file that is not in the repository"
        )
        for path, anchor in cited.findall(text):
            page = ROOT / path
            assert page.exists(), f"{source.relative_to(ROOT)} cites {path}, which does not exist"
            if anchor:
                assert anchor[1:] in anchors(page), (
                    f"{source.relative_to(ROOT)} cites {path}{anchor}: no such heading"
                )


def test_no_insider_jargon_in_code_or_manual():
    for path in [*SOURCES, *PAGES]:
        if path.name == "test_readme.py":
            continue
        assert "the seeds'" not in path.read_text(), f"{path.relative_to(ROOT)}: name the reference instead"
