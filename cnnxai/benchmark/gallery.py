"""The gallery of a benchmark's output folder: each shown image's frame and every method's map as scored, one
``gallery/<key>.npz`` per image, written beside the rows as a run finishes each unit (after its rows), and read
back by report.html (:mod:`cnnxai.reporting.html`)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnxai.outputs import atomic_write_bytes

GALLERY_FOLDER = "gallery"
DEFAULT_REPORT_IMAGES = 4  # the images whose maps a run keeps for its report


@dataclass(frozen=True)
class GalleryImage:
    """One image of the gallery: ``frame`` RGB uint8 (H,W,3) as explained, ``maps[method]`` float32 (H,W) as
    scored, ``mask`` bool (H,W) the ground-truth evidence (Localisation.py) or None, ``order`` its place in
    the run's images (the gallery shows the first ones)."""

    key: str
    title: str
    order: int
    frame: np.ndarray
    maps: dict[str, np.ndarray]
    mask: np.ndarray | None = None


def gallery_file(folder: Path, key: str) -> Path:
    """``folder/gallery/<key>.npz``, the image key made a safe file name ('n01440764/a.JPEG' -> 'n01440764__a.JPEG')."""
    name = re.sub(r"[^\w.\-]", "_", key.replace("/", "__")).lstrip(".") or "image"
    return Path(folder) / GALLERY_FOLDER / f"{name}.npz"


def save_gallery_maps(
    folder: Path,
    key: str,
    order: int,
    frame: np.ndarray,
    maps: Mapping[str, np.ndarray],
    title: str = "",
    mask: np.ndarray | None = None,
) -> Path:
    """Add ``maps`` (method -> float32 (H,W)) to image ``key``'s gallery file in ``folder``, keeping the maps
    stored before (a benchmark finishes one method at a time, and a resumed run only the missing ones).
    Written atomically, compressed; returns the file."""
    path = gallery_file(folder, key)
    stored = _read_npz(path)
    merged = dict(stored.maps) if stored is not None and stored.key == key else {}
    merged.update({method: np.asarray(values, dtype=np.float32) for method, values in maps.items()})
    arrays = {
        "key": np.array(key), "title": np.array(title or key), "order": np.array(order),
        "frame": np.asarray(frame, dtype=np.uint8), "methods": np.array(list(merged), dtype=str),
        "maps": np.stack(list(merged.values())),
    }  # fmt: skip
    if mask is not None:
        arrays["mask"] = np.asarray(mask, dtype=bool)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _read_npz(path: Path) -> GalleryImage | None:
    """One gallery file, or None when it is missing or unreadable (a report never fails on a picture)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            maps = dict(zip((str(m) for m in data["methods"]), data["maps"], strict=True))
            mask = data["mask"] if "mask" in data.files else None
            key, title, order = str(data["key"]), str(data["title"]), int(data["order"])
            return GalleryImage(key, title, order, data["frame"], maps, mask)
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def read_gallery(folders: Sequence[Path], count: int) -> list[GalleryImage]:
    """The first ``count`` images (by their order in the run) stored in the ``gallery/`` of ``folders``."""
    paths = [path for folder in folders for path in sorted((folder / GALLERY_FOLDER).glob("*.npz"))]
    found = [_read_npz(path) for path in paths]
    return sorted((image for image in found if image is not None), key=lambda image: image.order)[:count]
