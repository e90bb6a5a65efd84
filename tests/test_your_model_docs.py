"""docs/your-model.md runs as written: its Python snippets, in order, in one namespace, print what its text
blocks show, and every command line it shows parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import torch

from cnnxai.cli import build_parser

PAGE = Path(__file__).resolve().parents[1] / "docs" / "your-model.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_the_your_model_page_runs_and_prints_what_it_shows(capsys):
    namespace: dict = {}
    for code in blocks("python"):
        exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 (our own documentation)
    printed = capsys.readouterr().out
    shown = blocks("text")
    assert len(blocks("python")) == 5 and len(shown) == 5
    for text in shown:
        assert text.strip() in printed, (text, printed)
    assert namespace["maps"].dtype == torch.float32 and bool(namespace["maps"].abs().sum() > 0)


def test_the_command_lines_of_the_page_parse():
    commands = [" ".join(line.rstrip("\\").strip() for line in chunk.splitlines())
                for block in blocks("bash") for chunk in re.split(r"\n(?=python )", block)]  # fmt: skip
    commands = [command.split(" #")[0] for command in commands if command.startswith("python ")]
    assert len(commands) >= 10
    for command in commands:
        words = shlex.split(command)
        tool = {"GradLIME.py": "gradlime", "CamLIME.py": "camlime"}[words[1]]
        args = build_parser(tool).parse_args(words[2:])
        assert args.model, command
