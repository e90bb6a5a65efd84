"""A procedural image set with ground truth: one class-defining shape at a random place on a textured background,
among distractors that carry no class information.

Every image is drawn from its own generator, seeded by (seed, split, index), so image i is the same whatever
the size of the set, and the train and test splits never share a stream.

Classes (the shape of the one bright filled object): disc, square, triangle, cross; squares, triangles and
crosses are rotated at random. Distractors: straight strokes and hollow rings in the objects' bright colours,
and dark silhouettes of every class's shape, so that neither colour, edges nor outline alone tell where the
evidence is. The dark silhouettes also teach the model that a dark blob carries no class, which keeps LIME's
black (hide colour 0) superpixels and RISE's / Occlusion's mean-colour patches close to the training images.
The ground-truth mask is the object's own pixels.
"""

# device-ok-module: procedural images, drawn on the host (numpy in and out)

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from skimage.draw import disk, line, polygon

from cnnxai.images import dilate

CLASSES = ("disc", "square", "triangle", "cross")
SPLITS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class SyntheticSettings:
    """What defines the image set (all of it goes into the model cache's key).

    ``size`` pixels per side; ``object_size`` (min, max) of the object's bounding box in pixels;
    ``distractors`` (min, max) per image.
    """

    size: int = 64
    object_size: tuple[int, int] = (14, 20)
    distractors: tuple[int, int] = (2, 4)
    seed: int = 0


@dataclass(frozen=True)
class SyntheticSet:
    """``images`` uint8 (N,H,W,3), ``masks`` bool (N,H,W) (the object's pixels), ``labels`` int64 (N,),
    ``indices`` (N,) the index of each image in its split."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    split: str

    def __len__(self) -> int:
        return len(self.labels)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A dark, smoothly varying colour texture with fine grain: float (H,W,3) in 0..255."""
    coarse = torch.from_numpy(rng.uniform(0.0, 1.0, (1, 3, 6, 6)).astype(np.float32))
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0].permute(1, 2, 0)
    base = rng.uniform(20, 70, 3)
    texture = base + 60.0 * smooth.numpy() + rng.normal(0.0, 8.0, (size, size, 3))
    return texture


def object_colour(rng: np.random.Generator) -> np.ndarray:
    """A bright colour (one channel near full), well above the background's range."""
    colour = rng.uniform(90, 255, 3)
    colour[rng.integers(0, 3)] = rng.uniform(220, 255)
    return colour


def _rotated(points: np.ndarray, angle: float, centre: np.ndarray) -> np.ndarray:
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return points @ rotation.T + centre


def shape_mask(kind: str, centre: np.ndarray, extent: float, angle: float, size: int) -> np.ndarray:
    """Pixels of a filled shape: bool (size,size). ``extent`` is the side of its bounding box (before rotation)."""
    mask = np.zeros((size, size), dtype=bool)
    half = extent / 2.0
    if kind == "disc":
        rows, cols = disk(tuple(centre), half, shape=mask.shape)
    elif kind == "square":
        corners = np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]], dtype=float) * half * 0.82
        vertices = _rotated(corners, angle, centre)
        rows, cols = polygon(vertices[:, 0], vertices[:, 1], mask.shape)
    elif kind == "triangle":
        angles = angle + np.array([0.0, 2.0 * np.pi / 3.0, 4.0 * np.pi / 3.0])
        vertices = centre + half * 1.1 * np.stack([np.sin(angles), np.cos(angles)], axis=1)
        rows, cols = polygon(vertices[:, 0], vertices[:, 1], mask.shape)
    elif kind == "cross":
        arm = max(extent / 6.0, 1.5)
        bars = [np.array([[-half, -arm], [-half, arm], [half, arm], [half, -arm]]),
                np.array([[-arm, -half], [-arm, half], [arm, half], [arm, -half]])]  # fmt: skip
        for bar in bars:
            vertices = _rotated(bar, angle, centre)
            r, c = polygon(vertices[:, 0], vertices[:, 1], mask.shape)
            mask[r, c] = True
        return mask
    else:
        raise ValueError(f"unknown shape {kind!r}; choose one of {', '.join(CLASSES)}")
    mask[rows, cols] = True
    return mask


def dark_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 25, 3)


def distractor(rng: np.random.Generator, size: int, object_size: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """A bright stroke (a 2-pixel line), a bright hollow ring or a dark silhouette of a class's shape:
    (bool (size,size), whether it is dark)."""
    mask = np.zeros((size, size), dtype=bool)
    kind = rng.random()
    if kind < 1 / 3:
        extent = rng.uniform(*object_size)
        margin = extent / 2.0 + 1.0
        centre = rng.uniform(margin, size - margin, 2)
        shape = CLASSES[int(rng.integers(0, len(CLASSES)))]
        return shape_mask(shape, centre, extent, rng.uniform(0, 2 * np.pi), size), True
    if kind < 2 / 3:
        start = rng.uniform(4, size - 4, 2)
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(10, 18)
        end = np.clip(start + length * np.array([np.sin(angle), np.cos(angle)]), 1, size - 2)
        rows, cols = line(*np.round(start).astype(int), *np.round(end).astype(int))
        mask[rows, cols] = True
        mask[np.clip(rows + 1, 0, size - 1), cols] = True
    else:
        centre = rng.uniform(8, size - 8, 2)
        radius = rng.uniform(4.5, 7.0)
        outer = np.zeros_like(mask)
        outer[disk(tuple(centre), radius, shape=mask.shape)] = True
        inner = np.zeros_like(mask)
        inner[disk(tuple(centre), radius - 1.6, shape=mask.shape)] = True
        mask = outer & ~inner
    return mask, False


def draw_image(
    settings: SyntheticSettings, split: str, index: int, label: int | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Image ``index`` of ``split``: (RGB uint8 (H,W,3), object mask bool (H,W), label). ``label`` forces the
    class (the set draws it from the image's own generator)."""
    rng = np.random.default_rng(np.random.SeedSequence([settings.seed, SPLITS[split], index]))
    size = settings.size
    drawn = int(rng.integers(0, len(CLASSES)))
    label = drawn if label is None else int(label)
    image = background(rng, size)
    extent = rng.uniform(*settings.object_size)
    margin = extent / 2.0 + 2.0
    centre = rng.uniform(margin, size - margin, 2)
    obj = shape_mask(CLASSES[label], centre, extent, rng.uniform(0, 2 * np.pi), size)
    occupied = dilate(obj, 3)
    for _ in range(int(rng.integers(settings.distractors[0], settings.distractors[1] + 1))):
        for _attempt in range(20):  # a place that does not touch the object or another distractor
            stroke, dark = distractor(rng, size, settings.object_size)
            if not np.any(stroke & occupied):
                image[stroke] = dark_colour(rng) if dark else object_colour(rng)
                occupied |= dilate(stroke, 2)
                break
    image[obj] = object_colour(rng)
    image += rng.normal(0.0, 6.0, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), obj, label


def make_synthetic(settings: SyntheticSettings, split: str, count: int, start: int = 0) -> SyntheticSet:
    """Images ``start .. start+count-1`` of ``split`` ('train' or 'test')."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose train or test")
    drawn = [draw_image(settings, split, index) for index in range(start, start + count)]
    return SyntheticSet(
        images=np.stack([d[0] for d in drawn]),
        masks=np.stack([d[1] for d in drawn]),
        labels=np.array([d[2] for d in drawn], dtype=np.int64),
        indices=np.arange(start, start + count),
        split=split,
    )
