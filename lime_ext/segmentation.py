"""Superpixel segmentation with ids always relabelled to 0..M-1 (guards skimage's SLIC ``start_label=1`` trap)."""

from __future__ import annotations

from typing import Any

import numpy as np
from skimage.segmentation import felzenszwalb, quickshift, slic

SEGMENTERS = ("quickshift", "slic", "felzenszwalb")
DEFAULT_SEGMENTER = SEGMENTERS[0]  # quickshift: what the public GradLIME / CamLIME scripts use (through lime)

# Paper parity (lime's defaults as the public GradLIME/CamLIME scripts used them).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "quickshift": {"kernel_size": 4, "max_dist": 200, "ratio": 0.2},
    "slic": {"n_segments": 50, "compactness": 10.0, "sigma": 1.0},
    "felzenszwalb": {"scale": 100.0, "sigma": 0.5, "min_size": 50},
}


def relabel(segments: np.ndarray) -> np.ndarray:
    """Map arbitrary integer labels to 0..M-1 in increasing order of the original ids; int64 (H,W)."""
    _, inverse = np.unique(segments, return_inverse=True)
    return inverse.reshape(segments.shape).astype(np.int64)


def segment_image(
    image: np.ndarray, method: str = DEFAULT_SEGMENTER, seed: int = 0, **params: Any
) -> np.ndarray:
    """Superpixels of an RGB uint8 image (H,W,3); returns int64 (H,W) labels 0..M-1.

    ``params`` override the method's defaults (``DEFAULT_PARAMS``). Quickshift's random tie-breaking is
    seeded by ``seed``; SLIC and Felzenszwalb are deterministic.
    """
    if method not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {method!r}; choose one of {', '.join(SEGMENTERS)}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"segmentation needs an RGB image (H,W,3), got shape {image.shape}")
    options = {**DEFAULT_PARAMS[method], **params}
    if method == "quickshift":
        labels = quickshift(image, rng=int(seed), **options)
    elif method == "slic":
        labels = slic(image, start_label=0, channel_axis=-1, **options)
    else:
        labels = felzenszwalb(image, channel_axis=-1, **options)
    return relabel(labels)
