"""Random draws of a LIME neighbourhood, all from one explicit seed."""

from __future__ import annotations

import zlib

import numpy as np


def explanation_rng(seed: int, image: np.ndarray | None = None) -> np.random.Generator:
    """One generator per explanation, derived from the seed and (when given) the image's bytes, so images in a
    folder get distinct but reproducible streams."""
    key = [int(seed)]
    if image is not None:
        key.append(zlib.crc32(np.ascontiguousarray(image).tobytes()))
    return np.random.default_rng(np.random.SeedSequence(key))


def sample_binary_masks(num_samples: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Z in {0,1}^(N,M), uint8, each bit fair; row 0 is all ones (the unperturbed image)."""
    if num_samples < 2:
        raise ValueError(
            f"num_samples must be at least 2 (the image itself and one perturbation), got {num_samples}"
        )
    z = rng.integers(0, 2, size=(num_samples, num_segments), dtype=np.uint8)
    z[0, :] = 1
    return z
