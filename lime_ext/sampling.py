"""Random draws of a LIME neighbourhood, all from one explicit seed."""

from __future__ import annotations

import zlib

import numpy as np

SAMPLINGS = ("iid", "paired")
DEFAULT_SAMPLING = "iid"  # the paper's (and lime's) design; see docs/when-does-the-prior-help.md for 'paired'


def explanation_rng(seed: int, image: np.ndarray | None = None) -> np.random.Generator:
    """One generator per explanation, derived from the seed and (when given) the image's bytes, so images in a
    folder get distinct but reproducible streams."""
    key = [int(seed)]
    if image is not None:
        key.append(zlib.crc32(np.ascontiguousarray(image).tobytes()))
    return np.random.default_rng(np.random.SeedSequence(key))


def check_sampling(sampling: str) -> None:
    """Refuse a sampling design that is not one of :data:`SAMPLINGS`."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLINGS)}")


def sample_binary_masks(
    num_samples: int, num_segments: int, rng: np.random.Generator, sampling: str = DEFAULT_SAMPLING
) -> np.ndarray:
    """Z in {0,1}^(N,M), uint8, each bit fair; row 0 is all ones (the unperturbed image).

    ``'iid'``: every row drawn independently (lime's design). ``'paired'``: antithetic pairs, rows 2i and
    2i+1 are z and 1 - z (Covert and Lee, AISTATS 2021); row 0 (all ones, the image) is paired with row 1, all
    zeros, so every even prefix holds whole pairs and every odd prefix whole pairs plus one half-pair. Both
    designs keep the prefix property: the first n rows of a draw of N >= n rows are the draw of n rows (the
    generator is read row after row), so a neighbourhood grows without redrawing.
    """
    if num_samples < 2:
        raise ValueError(
            f"num_samples must be at least 2 (the image itself and one perturbation), got {num_samples}"
        )
    check_sampling(sampling)
    if sampling == "iid":
        z = rng.integers(0, 2, size=(num_samples, num_segments), dtype=np.uint8)
        z[0, :] = 1
        return z
    halves = rng.integers(0, 2, size=((num_samples + 1) // 2, num_segments), dtype=np.uint8)
    halves[0, :] = 1
    z = np.empty((num_samples, num_segments), dtype=np.uint8)
    z[0::2] = halves
    z[1::2] = 1 - halves[: num_samples // 2]
    return z
