"""Writing one explanation: explanation.png, superpixels.csv, attribution.npy, manifest.json, all or nothing."""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from cnnxai.pipeline import CamLimeResult

PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "scikit-learn",
    "scikit-image",
    "grad-cam",
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
    from cnnxai import __version__

    versions["cnnxai"] = __version__
    return versions


def json_fallback(value: Any) -> Any:
    """``json.dumps(..., default=json_fallback)`` for manifests: numpy scalars as numbers, arrays as lists,
    anything else (devices, paths) as its text."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it: a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(text)
    os.replace(temporary, path)


def atomic_savefig(fig, path: Path, dpi: int = 150) -> None:
    """Save a matplotlib figure as :func:`atomic_write_text` writes text (the suffix tells the format)."""
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    fig.savefig(temporary, dpi=dpi)
    os.replace(temporary, path)


@contextmanager
def atomic_folder(final: Path):
    """Yield a temporary folder beside ``final``; on success it replaces ``final``, on error it is removed,
    so a failed run never leaves a half-written output folder."""
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


def superpixel_rows(result: CamLimeResult) -> list[dict]:
    """One row per (label, superpixel): area, prior, weight w, attribution b and rank (1 = largest |b|), with
    plain LIME's weight and rank on the same perturbations beside them."""
    segments = result.ours.segments
    areas = np.bincount(segments.ravel(), minlength=result.ours.num_segments)
    rows = []
    for label in result.labels:
        ours, lime = result.ours.labels[label], result.lime.labels[label]
        ours_rank = {int(j): r + 1 for r, j in enumerate(ours.ranking)}
        lime_rank = {int(j): r + 1 for r, j in enumerate(lime.ranking)}
        for j in range(result.ours.num_segments):
            rows.append(
                {
                    "label": label,
                    "segment_id": j,
                    "area_px": int(areas[j]),
                    "prior": repr(float(ours.prior[j])),
                    "weight": repr(float(ours.weights[j])),
                    "attribution": repr(float(ours.attributions[j])),
                    "rank": ours_rank.get(j, ""),
                    "lime_weight": repr(float(lime.weights[j])),
                    "lime_rank": lime_rank.get(j, ""),
                }
            )
    return rows


def write_explanation(
    folder: Path,
    result: CamLimeResult,
    manifest: dict,
    draw_figure: Callable[[Path], None],
    compare: dict[str, np.ndarray] | None = None,
) -> list[str]:
    """Write every output of one image into ``folder`` (already created, temporary); returns the file names.
    ``compare`` maps explainer names to attribution maps saved as ``<name>.npy``."""
    files = []
    draw_figure(folder / "explanation.png")
    files.append("explanation.png")
    rows = superpixel_rows(result)
    with open(folder / "superpixels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    files.append("superpixels.csv")
    np.save(folder / "attribution.npy", result.ours.attribution_map(result.target))
    files.append("attribution.npy")
    for label in result.labels[1:]:
        name = f"attribution_class{label}.npy"
        np.save(folder / name, result.ours.attribution_map(label))
        files.append(name)
    for method, attribution in (compare or {}).items():
        np.save(folder / f"{method}.npy", attribution)
        files.append(f"{method}.npy")
    manifest = {**manifest, "files": files + ["manifest.json"], "versions": package_versions()}
    with open(folder / "manifest.json", "w") as handle:
        json.dump(manifest, handle, indent=2, default=_jsonable)
        handle.write("\n")
    return files + ["manifest.json"]


def _jsonable(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
