"""The measures of MyStability.py on per-superpixel attributions (M,): rankings, top-k sets, Jaccard, Kendall's
tau, and the normalised trapezoid area of a curve. Rankings are :func:`lime_ext.adaptive.ranking`'s, the one the
``num_samples='auto'`` stopping rule uses. Plain numpy/scipy on small arrays; no model here."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from itertools import combinations

import numpy as np
from scipy.stats import kendalltau

from lime_ext.adaptive import ranking


def top_k(attributions: np.ndarray, k: int) -> frozenset[int]:
    """The ``k`` superpixels ranked first by :func:`ranking`."""
    return frozenset(int(j) for j in ranking(attributions)[:k])


def top_k_undefined(num_superpixels: int, k: int) -> str:
    """Why top-k measures are undefined for ``num_superpixels`` (empty when they are defined): with k >= M
    every top-k set is the whole image and every Jaccard is trivially 1."""
    if k >= num_superpixels:
        return f"top-k {k} >= {num_superpixels} superpixels: top-k Jaccard undefined (trivially 1)"
    return ""


def jaccard(a: frozenset[int] | set[int], b: frozenset[int] | set[int]) -> float:
    """|a ∩ b| / |a ∪ b|; 1 for two empty sets."""
    union = len(a | b)
    return 1.0 if union == 0 else len(a & b) / union


def top_k_jaccard(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Jaccard of the top-k sets of two attribution vectors; NaN when k >= M (see :func:`top_k_undefined`)."""
    if top_k_undefined(len(x), k):
        return math.nan
    return jaccard(top_k(x, k), top_k(y, k))


def kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (scipy.stats.kendalltau) of two attribution vectors; NaN when either is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(kendalltau(x, y).statistic)


def mean_pairwise(values: Sequence[np.ndarray], measure) -> float:
    """Mean of ``measure(a, b)`` over every unordered pair of ``values`` (NaN pairs skipped; NaN if none)."""
    scores = [measure(a, b) for a, b in combinations(values, 2)]
    finite = [s for s in scores if not math.isnan(s)]
    return float(np.mean(finite)) if finite else math.nan


def top_k_stability(attributions: Sequence[np.ndarray], k: int) -> float:
    """Mean pairwise Jaccard of the top-k sets of explanations of one image (one per seed)."""
    return mean_pairwise(attributions, lambda a, b: top_k_jaccard(a, b, k))


def kendall_stability(attributions: Sequence[np.ndarray]) -> float:
    """Mean pairwise Kendall's tau of explanations of one image (one per seed)."""
    return mean_pairwise(attributions, kendall)


def normalised_auc(fractions: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area under ``values`` over ``fractions`` (from 0 to 1): the mean height of the curve."""
    fractions, values = np.asarray(fractions, dtype=np.float64), np.asarray(values, dtype=np.float64)
    span = fractions[-1] - fractions[0]
    return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(fractions)) / span)


def curve_counts(num_superpixels: int, steps: int) -> np.ndarray:
    """Superpixel counts (L+1,) hidden (or shown) at each point of a curve: 0, s, 2s, ..., M with s = ceil(M/steps)."""
    size = -(-num_superpixels // steps)
    return np.minimum(np.arange(0, num_superpixels + size, size), num_superpixels)
