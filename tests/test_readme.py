"""The README's test command is exactly what CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    command = [line for line in ci_lines if line and not line.startswith("#")][-1]
    assert "pytest" in command and "requirements-dev.txt" in command
    readme = (ROOT / "README.md").read_text()
    assert f"\n{command}\n" in readme
