"""Which images a benchmark runs on, drawn with the seed, and how they are grouped and split into shards.

Three kinds of input:
- an ImageNet-validation folder: one folder per class named by its WordNet id (``n01440764/...``), mapped to
  the model's class index by the table this suite ships (``cnnxai/data/imagenet_wnids.txt``, the 1000
  ImageNet-1k ids in class-index order);
- a flat folder of images (searched recursively; no true labels);
- nothing: the built-in sample photos (chelsea, coffee, rocket; no true labels).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from cnnxai.errors import UserInputError
from cnnxai.images import IMAGE_SUFFIXES, SAMPLE_IMAGES, find_images, load_image, sample_image

WNID = re.compile(r"^n\d{8}$")
WNID_TABLE = Path(__file__).resolve().parents[1] / "data" / "imagenet_wnids.txt"
LAYOUTS = ("imagenet", "flat", "samples")


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids; position = class index (they are sorted, as torchvision's classes)."""
    return tuple(WNID_TABLE.read_text().split())


@dataclass(frozen=True)
class BenchmarkImage:
    """One image of a benchmark. ``key`` is stable across runs and machines: the path relative to the data
    folder (POSIX separators) or ``sample:<name>``; ``true_class`` is None when the layout has no labels."""

    key: str
    path: Path | None
    true_class: int | None = None

    def load(self) -> np.ndarray:
        """RGB uint8 (H,W,3); raises :class:`~cnnxai.errors.ImageLoadError` naming the file."""
        if self.path is None:
            return sample_image(self.key.split(":", 1)[1])
        return load_image(self.path)


@dataclass(frozen=True)
class Dataset:
    """The images found, by class (``None`` is the only class of an unlabelled layout)."""

    layout: str
    root: Path | None
    classes: dict[int | None, list[BenchmarkImage]]

    @property
    def num_images(self) -> int:
        return sum(len(images) for images in self.classes.values())


def discover(data_dir: str | Path | None) -> Dataset:
    """Find the images of ``data_dir`` (or the sample photos for None) and tell the layout apart.

    A folder with sub-folders named like WordNet ids is an ImageNet-validation folder: every visible sub-folder
    must then be one of the 1000 ids, and images must sit inside them. Anything else is a flat folder.
    """
    if data_dir is None:
        images = [BenchmarkImage(f"sample:{name}", None) for name in SAMPLE_IMAGES]
        return Dataset("samples", None, {None: images})
    root = Path(data_dir)
    if not root.is_dir():
        raise UserInputError(
            f"--data-dir {root}: no such folder; give a folder of images or of class folders"
        )
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not any(WNID.match(folder.name) for folder in folders):
        found = find_images(root)
        return Dataset("flat", root, {None: [BenchmarkImage(_key(p, root), p) for p in found]})
    index = {wnid: i for i, wnid in enumerate(imagenet_wnids())}
    for folder in folders:
        if folder.name not in index:
            raise UserInputError(
                f"--data-dir {root}: folder {folder.name!r} is not one of the 1000 ImageNet-1k WordNet ids; "
                "an ImageNet-style folder holds only class folders such as n01440764/ (move it out)"
            )
    loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if loose:
        raise UserInputError(
            f"--data-dir {root}: holds class folders and also loose images ({loose[0].name}); "
            "put every image in its class folder, or point --data-dir at a flat folder"
        )
    classes: dict[int | None, list[BenchmarkImage]] = {}
    for folder in folders:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            label = index[folder.name]
            classes[label] = [BenchmarkImage(_key(p, root), p, label) for p in files]
    if not classes:
        raise UserInputError(
            f"--data-dir {root}: the class folders hold no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    return Dataset("imagenet", root, classes)


def _key(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def select(
    dataset: Dataset, num_classes: int | None, per_class: int | None, seed: int
) -> list[BenchmarkImage]:
    """Draw ``num_classes`` classes, then ``per_class`` images of each, with the seed (None: all).

    A flat folder or the sample photos count as one class, so ``per_class`` draws from all their images.
    A class with fewer images than ``per_class`` gives all it has. Returns the images by class, then by key.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 101]))
    labels = sorted(dataset.classes, key=lambda c: -1 if c is None else c)
    if num_classes is not None:
        if dataset.layout != "imagenet":
            raise UserInputError(
                f"--num-classes needs class folders named by WordNet id; this is a {dataset.layout} input "
                "(use --per-class to draw images from it)"
            )
        if num_classes > len(labels):
            raise UserInputError(f"--num-classes {num_classes}: the folder has only {len(labels)} classes")
        labels = [labels[i] for i in sorted(rng.choice(len(labels), num_classes, replace=False))]
    chosen = []
    for label in labels:
        images = dataset.classes[label]
        if per_class is not None and per_class < len(images):
            images = [images[i] for i in sorted(rng.choice(len(images), per_class, replace=False))]
        chosen.extend(images)
    return chosen


@dataclass(frozen=True)
class ImageGroup:
    """Images scored together: Sufficiency compares the explanations within a group. ``index`` is stable."""

    index: int
    images: tuple[BenchmarkImage, ...]


def make_groups(images: list[BenchmarkImage], size: int, seed: int) -> list[ImageGroup]:
    """Shuffle the images with the seed (so groups mix classes) and cut them into groups of ``size``."""
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 202])).permutation(len(images))
    shuffled = [images[i] for i in order]
    return [ImageGroup(i // size, tuple(shuffled[i : i + size])) for i in range(0, len(shuffled), size)]


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' (1 <= i <= n) -> (i, n)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise UserInputError(f"--shard {text}: expected i/n with 1 <= i <= n, for example 2/4")
    return int(match.group(1)), int(match.group(2))


def shard_groups(groups: list[ImageGroup], shard: tuple[int, int]) -> list[ImageGroup]:
    """The groups of shard i of n: every n-th group starting at the i-th (groups are never split)."""
    index, count = shard
    return [group for group in groups if group.index % count == index - 1]
