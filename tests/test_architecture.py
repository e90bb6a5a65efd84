"""The layering of docs/architecture.md: lime_ext knows nothing of CAMs or of the suite, cam_ext nothing of the
suite, cnnxai.outputs nothing of the pipeline, and the folders of cnnxai import only from the layers below them
(and have no cycle between them)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

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
        "cnnxai.system",
        "cnnxai.version",
    }


# The layers of docs/architecture.md, from the bottom. A unit is a folder of cnnxai, a module at its top, or
# lime_ext / cam_ext as a whole; every command-line file (CLI_FILES, in any folder) and the package's facade
# (cnnxai/__init__.py: ``cnnxai.GradLIME`` ...) belong to the top layer, whatever folder they are in.
LAYERS = (
    ("errors, system, options, registry, outputs, devices, preprocess", (
        "cnnxai/version", "cnnxai/errors", "cnnxai/system", "cnnxai/options", "cnnxai/registry",
        "cnnxai/outputs", "cnnxai/devices", "cnnxai/preprocess")),
    ("lime_ext", ("lime_ext",)),
    ("cam_ext", ("cam_ext",)),
    ("one image on one model", ("cnnxai/session",)),
    ("model zoo, images, synthetic data and models", ("cnnxai/zoo", "cnnxai/images", "cnnxai/synthetic")),
    ("targets", ("cnnxai/targets",)),
    ("explainers, metrics", ("cnnxai/explainers", "cnnxai/metrics")),
    ("library runs", (
        "cnnxai/attribute", "cnnxai/distributed", "cnnxai/explain_run", "cnnxai/tasks", "cnnxai/benchmark",
        "cnnxai/stability", "cnnxai/groundtruth", "cnnxai/signal1d")),
    ("figures, reporting", ("cnnxai/figures", "cnnxai/reporting")),
    ("command lines", ("cnnxai/__init__", "cnnxai/cli", "cnnxai/cli_options", "cnnxai/commands")),
)  # fmt: skip
CLI_FILES = ("cli.py", "__main__.py")
PACKAGES = ("cnnxai", "lime_ext", "cam_ext")
LAYER = {unit: level for level, (_, units) in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str | None:
    """The unit of a dotted module name (None outside the three packages): ``cnnxai.benchmark.store`` ->
    ``cnnxai/benchmark``, ``cnnxai.benchmark.cli`` -> itself (a command line), ``cnnxai`` -> its facade."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    if parts[0] != "cnnxai":
        return parts[0]
    if len(parts) == 1:
        return "cnnxai/__init__"
    if len(parts) > 2 and f"{parts[-1]}.py" in CLI_FILES:
        return "/".join(parts)
    return f"cnnxai/{parts[1]}"


def module_of(path: Path) -> str:
    """``cnnxai/benchmark/store.py`` -> ``cnnxai.benchmark.store`` (a package's ``__init__`` -> the package)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, module) of every import of ``path`` (its text, or ``source``), inside functions too; relative
    imports made absolute, and ``from cnnxai import attribute`` counted as the module ``cnnxai.attribute`` when it
    is one."""
    package = module_of(path) if path.name == "__init__.py" else module_of(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (ROOT / sub.replace(".", "/")).is_dir() or (
                    ROOT / f"{sub.replace('.', '/')}.py"
                ).exists()
                found.append((node.lineno, sub if is_module else base))
    return found


def unit_imports() -> list[tuple[str, str, str, int, str]]:
    """(importing unit, imported unit, file, line, module) for every import between two different units."""
    edges = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = unit_of(module_of(path))
            for line, module in imports_of(path):
                target = unit_of(module)
                if target is not None and target != source:
                    edges.append((source, target, str(path.relative_to(ROOT)), line, module))
    return edges


def layer_of(unit: str) -> int:
    """A unit's layer: the top one for a command-line file, else as declared."""
    return len(LAYERS) - 1 if unit.rsplit("/", 1)[-1] + ".py" in CLI_FILES else LAYER[unit]


def test_every_folder_has_a_declared_layer():
    units = {unit_of(module_of(path)) for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    undeclared = sorted(u for u in units if u not in LAYER and u.rsplit("/", 1)[-1] + ".py" not in CLI_FILES)
    assert not undeclared, f"add {undeclared} to a layer of LAYERS (and to docs/architecture.md)"
    stale = sorted(set(LAYER) - units)
    assert not stale, (
        f"LAYERS names {stale}, which no longer exist; remove them (and from docs/architecture.md)"
    )


def test_no_folder_imports_from_a_layer_above_it():
    upward = [
        f"{file}:{line} imports {module} ({LAYERS[layer_of(target)][0]}) from the layer "
        f"'{LAYERS[layer_of(source)][0]}' below it"
        for source, target, file, line, module in unit_imports()
        if layer_of(target) > layer_of(source)
    ]
    assert not upward, "imports upward:\n" + "\n".join(upward)


def test_no_folder_cycles():
    graph: dict[str, dict[str, str]] = defaultdict(dict)
    for source, target, file, line, module in unit_imports():
        graph[source].setdefault(target, f"{file}:{line} imports {module}")
    state: dict[str, int] = {}  # 1 on the path, 2 done
    cycles = []

    def visit(unit: str, path: list[str]) -> None:
        state[unit] = 1
        for target in sorted(graph[unit]):
            if state.get(target) == 1:
                loop = [*path[path.index(target) :], target]
                cycles.append(
                    " -> ".join(f"{a} ({graph[a][b]})" for a, b in zip(loop, loop[1:], strict=False))
                )
            elif target not in state:
                visit(target, [*path, target])
        state[unit] = 2

    for unit in sorted(graph):
        if unit not in state:
            visit(unit, [unit])
    assert not cycles, "folder cycles:\n" + "\n".join(cycles)


def test_the_layer_check_sees_imports_in_functions_and_relative_ones():
    """The checker itself, on a made-up metrics module: an import inside a function, a relative import and
    ``from cnnxai import <module>`` are all found, and the first two are upward."""
    source = (
        "from . import specs\n"
        "from ..figures import panels\n"
        "from cnnxai import zoo\n"
        "def draw():\n"
        "    from cnnxai.reporting.html import write_report\n"
    )
    found = imports_of(ROOT / "cnnxai" / "metrics" / "made_up.py", source)
    assert found == [(1, "cnnxai.metrics.specs"), (2, "cnnxai.figures.panels"), (3, "cnnxai.zoo"),
                     (5, "cnnxai.reporting.html")]  # fmt: skip
    layers = [layer_of(unit_of(module)) for _, module in found]
    assert layers[1] > LAYER["cnnxai/metrics"] and layers[3] > LAYER["cnnxai/metrics"]
    assert layers[2] < LAYER["cnnxai/metrics"]
    assert (
        unit_of("cnnxai.figures.cli") == "cnnxai/figures/cli"
        and layer_of("cnnxai/figures/cli") == len(LAYERS) - 1
    )


def test_only_the_command_lines_parse_arguments():
    """argparse (and so a Namespace) stays in the command-line files: the library takes settings objects."""
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name not in CLI_FILES and path.name != "cli_options.py"
        for line, module in imports_of(path)
        if module.split(".")[0] == "argparse"
    ]
    assert not found, "argparse imported below the command lines: " + ", ".join(found)
