"""Multi-object scenes for detection and segmentation, with ground truth: a few class shapes (those of
:mod:`cnnxai.synthetic.shapes`, drawn by its own functions) at random places on its textured background,
among its distractors (bright strokes and rings, dark silhouettes), which carry no class.

Every scene is drawn from its own generator, seeded by (seed, split, index) and a tag of its own, so scene i is
the same whatever the size of the set, the splits never share a stream, and no scene shares one with the
single-object images of the classification benchmark.

Objects neither overlap nor touch each other or a distractor (a place that would is drawn again), so every
object's pixels, its box and its label-map region are one and the same set.
"""

# device-ok-module: procedural scenes and their ground truth, drawn on the host

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cnnxai.images import dilate
from cnnxai.synthetic.shapes import (
    CLASSES,
    SPLITS,
    background,
    dark_colour,
    distractor,
    object_colour,
    shape_mask,
)

SCENE_STREAM = 0x5CE4E  # the first entropy word of every scene's seed: a stream apart from synthetic.py's
OBJECT_GAP = 2  # pixels of background at least between two objects
DISTRACTOR_GAP = 3  # pixels of background at least between an object and a distractor (synthetic.py's too)
ATTEMPTS = 30  # places drawn for an object or a distractor before it is left out


@dataclass(frozen=True)
class SceneSettings:
    """What defines the scene set (all of it goes into the models' cache keys).

    ``size`` pixels per side; ``objects`` (min, max) class shapes per scene; ``object_size`` (min, max) of an
    object's bounding box in pixels (before rotation); ``distractors`` (min, max) per scene.
    """

    size: int = 96
    objects: tuple[int, int] = (1, 3)
    object_size: tuple[int, int] = (16, 28)
    distractors: tuple[int, int] = (1, 3)
    seed: int = 0


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene: ``label`` its class (index into CLASSES), ``box`` (x1, y1, x2, y2) in pixels in
    torchvision's convention (x1, y1 its first column and row, x2, y2 its last plus one, so a one-pixel object
    has width 1), ``mask`` bool (H,W) its pixels."""

    label: int
    box: tuple[float, float, float, float]
    mask: np.ndarray


@dataclass(frozen=True)
class SceneSet:
    """``images`` uint8 (N,H,W,3); ``label_maps`` int64 (N,H,W), 0 for background and 1+c on class c's objects;
    ``objects`` per scene, its objects in the order they were drawn; ``indices`` (N,) each scene's index in its
    split."""

    images: np.ndarray
    label_maps: np.ndarray
    objects: list[list[SceneObject]]
    indices: np.ndarray
    split: str

    def __len__(self) -> int:
        return len(self.images)

    def targets(self) -> list[dict[str, torch.Tensor]]:
        """Each scene's objects in torchvision's detection target format: ``boxes`` float32 (n,4) xyxy,
        ``labels`` int64 (n,) (0..3, no background class), ``masks`` bool (n,H,W)."""
        size = self.images.shape[1:3]
        return [
            {
                "boxes": torch.tensor([o.box for o in objects], dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor([o.label for o in objects], dtype=torch.int64),
                "masks": torch.from_numpy(
                    np.stack([o.mask for o in objects]) if objects else np.zeros((0, *size), bool)
                ),
            }
            for objects in self.objects
        ]


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """The extent of a non-empty bool (H,W) mask as an (x1, y1, x2, y2) box in torchvision's convention."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def draw_scene(
    settings: SceneSettings, split: str, index: int
) -> tuple[np.ndarray, np.ndarray, list[SceneObject]]:
    """Scene ``index`` of ``split``: (RGB uint8 (H,W,3), label map int64 (H,W), objects).

    Objects are placed first (each fully inside the image and at least OBJECT_GAP pixels from the others), then
    distractors (at least DISTRACTOR_GAP pixels from objects, and apart from each other), then the noise. The
    first object always fits; a later one or a distractor that finds no free place in ATTEMPTS draws is left
    out, so a crowded scene may hold fewer than it drew.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose train or test")
    rng = np.random.default_rng(np.random.SeedSequence([SCENE_STREAM, settings.seed, SPLITS[split], index]))
    size = settings.size
    image = background(rng, size)
    label_map = np.zeros((size, size), dtype=np.int64)
    objects: list[SceneObject] = []
    near_objects = np.zeros((size, size), dtype=bool)  # pixels within OBJECT_GAP of an object
    for _ in range(int(rng.integers(settings.objects[0], settings.objects[1] + 1))):
        label = int(rng.integers(0, len(CLASSES)))
        for _attempt in range(ATTEMPTS):
            extent = rng.uniform(*settings.object_size)
            margin = 0.6 * extent + 1.0  # rotated squares and crosses reach past extent / 2
            centre = rng.uniform(margin, size - margin, 2)
            mask = shape_mask(CLASSES[label], centre, extent, rng.uniform(0, 2 * np.pi), size)
            if mask.any() and not np.any(mask & near_objects):
                objects.append(SceneObject(label, mask_box(mask), mask))
                near_objects |= dilate(mask, OBJECT_GAP)
                label_map[mask] = 1 + label
                break
    occupied = dilate(label_map > 0, DISTRACTOR_GAP)
    for _ in range(int(rng.integers(settings.distractors[0], settings.distractors[1] + 1))):
        for _attempt in range(ATTEMPTS):
            stroke, dark = distractor(rng, size, settings.object_size)
            if not np.any(stroke & occupied):
                image[stroke] = dark_colour(rng) if dark else object_colour(rng)
                occupied |= dilate(stroke, 2)
                break
    for obj in objects:
        image[obj.mask] = object_colour(rng)
    image += rng.normal(0.0, 6.0, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), label_map, objects


def make_scenes(settings: SceneSettings, split: str, count: int, start: int = 0) -> SceneSet:
    """Scenes ``start .. start+count-1`` of ``split`` ('train' or 'test')."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose train or test")
    size = settings.size
    drawn = [draw_scene(settings, split, index) for index in range(start, start + count)]
    return SceneSet(
        images=np.stack([d[0] for d in drawn]) if drawn else np.zeros((0, size, size, 3), np.uint8),
        label_maps=np.stack([d[1] for d in drawn]) if drawn else np.zeros((0, size, size), np.int64),
        objects=[d[2] for d in drawn],
        indices=np.arange(start, start + count),
        split=split,
    )
