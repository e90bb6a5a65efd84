"""The layering of docs/architecture.md: lime_ext knows nothing of CAMs or of the suite, cam_ext nothing of the
suite, and cnnxai.outputs nothing of the pipeline."""

from __future__ import annotations

import ast

import pytest

from tests.helpers import ROOT


def imported_packages(path) -> set[str]:
    """The top-level names of every module ``path`` imports, and the full names under cnnxai."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("lime_ext", ("cam_ext", "cnnxai")), ("cam_ext", ("cnnxai",))],
)
def test_a_package_imports_only_the_ones_below_it(package, forbidden):
    for path in (ROOT / package).rglob("*.py"):
        bad = [name for name in imported_packages(path) if name.split(".")[0] in forbidden]
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_writing_files_needs_nothing_of_the_pipeline():
    imported = imported_packages(ROOT / "cnnxai" / "outputs.py") | imported_packages(
        ROOT / "cnnxai" / "system.py"
    )
    assert {name for name in imported if name.startswith(("cnnxai", "lime_ext", "cam_ext"))} <= {
        "cnnxai",
        "cnnxai.system",
    }  # the version
