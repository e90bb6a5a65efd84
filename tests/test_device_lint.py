"""Device correctness by construction, checked on the source (CI has no GPU): a tensor made without saying where
it lives lands on the CPU and breaks (or silently slows) the CUDA path, and a CUDA tensor read by numpy without
``.cpu()`` raises. The rules, over lime_ext, cam_ext and cnnxai:

- a tensor constructor (``torch.tensor``, ``zeros``, ``arange``, ...) without ``device=``;
- ``torch.from_numpy`` / ``torch.as_tensor`` (without ``device=``) not followed by ``.to(``;
- ``.numpy()`` on anything but ``.cpu()`` (or ``.cpu().<dtype or detach>()``);
- ``torch.Generator()`` without a device.

A line that is right as it is says why with the pragma ``# device-ok: <reason>``, on the flagged line or the line
of the statement's start; a module whose tensors all live on the host by design (procedural data generators)
says so once, with ``# device-ok-module: <reason>`` on a line of its own.
"""

from __future__ import annotations

import ast

import pytest

from tests.helpers import ROOT

PACKAGES = ("lime_ext", "cam_ext", "cnnxai")
PRAGMA = "# device-ok:"
MODULE_PRAGMA = "# device-ok-module:"
CONSTRUCTORS = {
    "tensor", "zeros", "ones", "empty", "full", "arange", "linspace", "logspace", "eye", "rand", "randn",
    "randint", "randperm",
}  # fmt: skip
# Methods that may stand between .cpu() and .numpy() without moving the tensor back to a device.
HOST_KEEPING = {
    "detach",
    "float",
    "double",
    "half",
    "long",
    "int",
    "bool",
    "contiguous",
    "clone",
    "squeeze",
    "flatten",
}


def _is_torch(node: ast.AST, names: set[str]) -> bool:
    """``torch.<name>`` for a name in ``names``."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr in names
        and isinstance(node.value, ast.Name)
        and node.value.id == "torch"
    )


def _keywords(call: ast.Call) -> set[str]:
    return {k.arg for k in call.keywords if k.arg}


def _receiver_is_cpu(node: ast.AST) -> bool:
    """Whether ``node`` (the receiver of ``.numpy()``) is ``x.cpu()``, possibly followed by host-keeping calls."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "cpu":
            return True
        if node.func.attr not in HOST_KEEPING:
            return False
        node = node.func.value
    return False


def violations(source: str, name: str) -> list[str]:
    """The device faults of one module's ``source``, as 'name:line: problem'."""
    lines = source.splitlines()
    if any(line.startswith(MODULE_PRAGMA) and line[len(MODULE_PRAGMA) :].strip() for line in lines):
        return []
    tree = ast.parse(source)
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent
    statements: dict[int, int] = {}  # line -> first line of the statement that holds it
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt):
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                statements.setdefault(line, node.lineno)
                if statements[line] < node.lineno:
                    statements[line] = node.lineno

    def excused(node: ast.AST) -> bool:
        line = node.lineno
        first = statements.get(line, line)
        return any(
            lines[i - 1].partition(PRAGMA)[2].strip()
            for i in {line, first, getattr(node, "end_lineno", line)}
        )

    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        problem = None
        func = node.func
        if _is_torch(func, CONSTRUCTORS) and "device" not in _keywords(node):
            problem = f"torch.{func.attr}(...) without device="
        elif _is_torch(func, {"from_numpy", "as_tensor"}) and "device" not in _keywords(node):
            parent = parents.get(node)
            moved = isinstance(parent, ast.Attribute) and parent.attr == "to"
            if not moved:
                problem = f"torch.{func.attr}(...) not followed by .to("
        elif isinstance(func, ast.Attribute) and func.attr == "numpy" and not node.args:
            if not _receiver_is_cpu(func.value):
                problem = ".numpy() without .cpu()"
        elif _is_torch(func, {"Generator"}) and not node.args and "device" not in _keywords(node):
            problem = "torch.Generator() without a device"
        if problem and not excused(node):
            found.append(f"{name}:{node.lineno}: {problem}")
    return found


def test_no_device_faults_in_the_library():
    paths = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    found = [v for path in paths for v in violations(path.read_text(), str(path.relative_to(ROOT)))]
    assert not found, "device faults (fix, or say why with '# device-ok: <reason>'):\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("code", "flagged"),
    [
        ("torch.tensor([1.0])", True),
        ("torch.tensor([1.0], device=x.device)", False),
        ("torch.zeros(3)", True),
        ("torch.from_numpy(a)", True),
        ("torch.from_numpy(a).to(device)", False),
        ("torch.as_tensor(a)", True),
        ("torch.as_tensor(a, device=d)", False),
        ("x.numpy()", True),
        ("x.cpu().numpy()", False),
        ("x.detach().cpu().double().numpy()", False),
        ("x.cpu().to(d).numpy()", True),
        ("torch.Generator()", True),
        ("torch.Generator(device='cpu')", False),
        ("torch.tensor([1.0])  # device-ok: made for the host", False),
        ("torch.tensor([1.0])  # device-ok:", True),
    ],
)
def test_the_lint_flags_what_it_should(code, flagged):
    assert bool(violations(f"import torch\nvalue = {code}\n", "probe.py")) is flagged


def test_a_module_pragma_needs_a_reason():
    code = "import torch\nvalue = torch.zeros(3)\n"
    assert not violations("# device-ok-module: host-only data\n" + code, "probe.py")
    assert violations("# device-ok-module:\n" + code, "probe.py")
