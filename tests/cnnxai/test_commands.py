"""The installed commands (pyproject's [project.scripts]) and the root scripts are one mapping onto cnnxai.commands,
and each command's --help is its script's with its own program name. The wheel itself: tests/test_install.py."""

from __future__ import annotations

import ast
import re
import sys

import pytest

from cnnxai import commands
from tests.helpers import ROOT

# The documented mapping (docs/cli.md#installed-commands): root script -> installed command.
SCRIPTS = {
    "GradLIME.py": "gradlime",
    "CamLIME.py": "camlime",
    "MyFaithfulness.py": "cnnxai-faithfulness",
    "MyComplexity.py": "cnnxai-complexity",
    "MyStability.py": "cnnxai-stability",
    "Figures.py": "cnnxai-figures",
    "Localisation.py": "cnnxai-localisation",
    "MNIST1D.py": "cnnxai-mnist1d",
}


def script_function(script: str) -> str:
    """The cnnxai.commands function a root script imports and exits with."""
    tree = ast.parse((ROOT / script).read_text())
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "cnnxai.commands"
        for alias in node.names
    ]
    assert len(imported) == 1, f"{script} should import one function of cnnxai.commands"
    assert f"sys.exit({imported[0]}())" in (ROOT / script).read_text()
    return imported[0]


def test_every_script_has_its_command_and_both_call_the_same_function():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert sorted(entry_points) == sorted(SCRIPTS.values())
    assert sorted(p.name for p in ROOT.glob("*.py")) == sorted(SCRIPTS)
    for script, command in SCRIPTS.items():
        assert entry_points[command] == f"cnnxai.commands:{script_function(script)}", script


def help_text(function: str, argv0: str, monkeypatch, capsys) -> str:
    monkeypatch.setattr(sys, "argv", [argv0, "--help"])
    assert getattr(commands, function)() == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_command_s_help_is_its_script_s_with_its_own_name(script, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")
    function, command = script_function(script), SCRIPTS[script]
    as_script = help_text(function, str(ROOT / script), monkeypatch, capsys)
    as_command = help_text(function, f"/some/venv/bin/{command}", monkeypatch, capsys)
    assert as_script.startswith(f"usage: {script} ") and as_command.startswith(f"usage: {command} ")
    # The usage lines wrap at other places for a name of another length: compare the words.
    words = re.compile(rf"(?<![\w.-])({re.escape(script)}|{re.escape(command)})(?![\w.-])")
    assert words.sub("PROG", as_script).split() == words.sub("PROG", as_command).split()


def test_the_program_name_is_the_one_typed(monkeypatch):
    for argv0, expected in [
        ("/usr/bin/gradlime", "gradlime"),
        ("C:\\venv\\Scripts\\gradlime.exe".replace("\\", "/"), "gradlime"),
        ("GradLIME.py", "GradLIME.py"),
        ("-c", None),
        ("", None),
    ]:
        monkeypatch.setattr(sys, "argv", [argv0])
        assert commands.program_name() == expected, argv0
