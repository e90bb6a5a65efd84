"""`pip install .` gives a working package: the wheel built from this tree, installed into a fresh virtual
environment, runs its installed command from another folder, and imports cnnxai from its own site-packages.

Nothing is downloaded: the wheel is built without isolation (setuptools of this environment) and installed with
--no-deps --no-index; the fresh environment reaches this one's dependencies (torch, ...) through a .pth file, which
appends this environment's site-packages after its own. The repository itself is never on its path: it is not
installed here (no editable install), the commands run elsewhere, and PYTHONPATH is cleared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from tests.cnnxai.test_cli import EXPLANATION_FILES
from tests.cnnxai.test_commands import SCRIPTS
from tests.helpers import ROOT

# What a build needs of the tree; the rest (.venv, outputs, caches, DemoImage's 18 MB) stays behind.
LEFT_BEHIND = {".git", ".venv", "results", "build", "dist", "DemoImage", ".pytest_cache", ".ruff_cache"}
FAST = ["--num-samples", "24", "--batch-size", "12", "--segmenter", "slic", "--num-features", "3", "--quiet"]


def run(command: list, cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(tmp: Path, env: dict[str, str]) -> Path:
    """The wheel of a clean copy of the tree (an in-tree build would leave build/ behind, whose stale files
    would go into later wheels)."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        left = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        return left | (LEFT_BEHIND & set(names) if Path(folder) == ROOT else set())

    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=ignore)
    pip_wheel = "-m pip wheel --no-deps --no-build-isolation --no-index -q -w".split()
    run([sys.executable, *pip_wheel, str(tmp / "dist"), str(source)], tmp, env)
    (wheel,) = (tmp / "dist").glob("cnnxai-*.whl")
    return wheel


def test_the_wheel_installs_and_its_command_runs_outside_the_repository(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        COLUMNS="100",
        MPLBACKEND="Agg",
        CNNXAI_CACHE=str(tmp_path / "cache"),
    )
    wheel = build_wheel(tmp_path, env)
    files = set(zipfile.ZipFile(wheel).namelist())
    assert "cnnxai/data/imagenet_wnids.txt" in files and "cnnxai/commands.py" in files
    top = {name.split("/")[0] for name in files}
    assert {name for name in top if not name.endswith(".dist-info")} == {"cnnxai", "lime_ext", "cam_ext"}

    fresh = tmp_path / "fresh"
    run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], tmp_path, env)
    python = fresh / "bin" / "python"
    site = Path(
        run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env
        ).stdout.strip()
    )
    ours = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    assert str(ROOT) not in ours
    (site / "dependencies-of-the-dev-environment.pth").write_text(
        "".join(f"{path}\n" for path in sorted(ours))
    )
    # pip >= 22.3 installs into another interpreter's environment with --python.
    pip_install = [
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--no-deps",
        "--no-index",
        "-q",
        str(wheel),
    ]
    run([sys.executable, *pip_install], tmp_path, env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Where the fresh environment imports the packages from (cam_ext and lime_ext found, not imported: torch
    # takes seconds to import), and the package data beside them.
    where = json.loads(
        run(
            [
                python,
                "-c",
                "import importlib.util, json, cnnxai; print(json.dumps([cnnxai.__file__] + "
                "[importlib.util.find_spec(name).origin for name in ('cam_ext', 'lime_ext')]))",
            ],
            elsewhere,
            env,
        ).stdout
    )
    for module_file in where:
        assert Path(module_file).is_relative_to(site), where
    assert len((Path(where[0]).parent / "data" / "imagenet_wnids.txt").read_text().split()) == 1000

    # --help: the script's, with the command's own name (the usage lines wrap elsewhere: compare the words).
    installed = run([fresh / "bin" / "gradlime", "--help"], elsewhere, env).stdout
    script = run([sys.executable, ROOT / "GradLIME.py", "--help"], elsewhere, env).stdout
    assert installed.startswith("usage: gradlime ") and script.startswith("usage: GradLIME.py ")
    assert installed.split()[2:] == script.split()[2:]
    for command in SCRIPTS.values():
        assert (fresh / "bin" / command).is_file(), command

    # One real explanation of the built-in photo on the embedded model, from the installed command.
    done = run([fresh / "bin" / "gradlime", *FAST, "--device", "cpu", "--output-dir", "out"], elsewhere, env)
    assert "chelsea" in done.stdout
    folder = elsewhere / "out" / "chelsea"
    assert sorted(p.name for p in folder.iterdir()) == EXPLANATION_FILES
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["model"]["model"] == "efficientnet_lite0" and manifest["options"]["num_samples"] == 24
