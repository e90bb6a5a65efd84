"""Writing results: atomic files and folders, JSON with one fallback, and the one manifest builder.

Imports nothing of the pipeline, so any part of the suite can write its files through it.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from cnnxai.system import system_record
from cnnxai.version import __version__

# The layout of every manifest.json this suite writes; bump when a key changes meaning or moves.
MANIFEST_SCHEMA = 2

PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "scikit-learn",
    "scikit-image",
    "grad-cam",
    "timm",  # optional: --model timm:NAME ("not installed" otherwise)
    "Pillow",
    "matplotlib",
)


def package_versions(extra: Sequence[str] = ()) -> dict[str, str]:
    """Versions of Python, the suite and its packages (``PACKAGES`` and ``extra``), for manifests."""
    versions = {"python": platform.python_version()}
    for name in (*PACKAGES, *extra):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["cnnxai"] = __version__
    return versions


def json_fallback(value: Any) -> Any:
    """``json.dumps(..., default=json_fallback)``: numpy scalars as numbers, arrays as lists, anything else
    (devices, paths, settings objects) as its text."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def to_json(data: Any) -> str:
    """Indented JSON text with a final newline, through :func:`json_fallback`."""
    return json.dumps(data, indent=2, default=json_fallback) + "\n"


def command_line() -> str:
    """The command line of this process, quoted as a shell would need it."""
    return shlex.join(sys.argv)


def build_manifest(tool: str, extra_packages: Sequence[str] = (), **sections: Any) -> dict[str, Any]:
    """The manifest of one result: ``schema_version``, ``tool``, the command line, the caller's ``sections`` (in
    their order), package versions (``PACKAGES`` and ``extra_packages``), the platform and the process settings
    settings that can change speed but not values (:func:`cnnxai.system.system_record`: the allocator tuning,
    torch's threads, the OpenMP environment) and what ran the forward-only passes (:func:`backend_record`)."""
    return {
        "schema_version": MANIFEST_SCHEMA,
        "tool": tool,
        "command": command_line(),
        **sections,
        "versions": package_versions(extra_packages),
        "platform": platform.platform(),
        "process": system_record(),
        "backends": backend_record(),
    }


def backend_record() -> dict[str, Any] | None:
    """The process's forward backend and every exported model session it built (backend, export and compile
    seconds, cached file, fallback reason: :func:`lime_ext.backends.process_record`); None when no classifier was
    ever made (this function does not import the pipeline)."""
    module = sys.modules.get("lime_ext.backends")
    return None if module is None else module.process_record()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) as :func:`atomic_write_bytes` writes bytes."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it: a reader never sees half a file, and
    processes writing the same path at once each rename a whole file of their own."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}-{threading.get_ident()}")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON (see :func:`to_json`), written atomically."""
    atomic_write_text(path, to_json(data))


def atomic_savefig(fig, path: Path, dpi: int = 150) -> None:
    """Save a matplotlib figure as :func:`atomic_write_text` writes text (the suffix tells the format)."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    fig.savefig(temporary, dpi=dpi)
    os.replace(temporary, path)


@contextmanager
def atomic_folder(final: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success it replaces ``final``, on error it is removed,
    so a failed run never leaves a half-written output folder."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.parent / f".{final.name}.partial-{os.getpid()}"
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir()
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    temporary.rename(final)
