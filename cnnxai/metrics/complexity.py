"""The complexity metrics of the seeds' MyComplexity.py: functions of the map alone, on |a| / max|a|.

The arithmetic follows Quantus 0.6.0's (float32 map, the same offsets), so values agree with it to rounding.
"""

from __future__ import annotations

import numpy as np

from cnnxai.metrics.image import normalise_by_max
from cnnxai.metrics.result import MetricResult, undefined


def _magnitudes(attribution: np.ndarray) -> np.ndarray:
    return np.abs(normalise_by_max(attribution)).reshape(-1)


def sparseness(attribution: np.ndarray) -> MetricResult:
    """Gini index of the magnitudes (+1e-7, so an all-zero map scores 0): 0 = uniform, towards 1 = one pixel."""
    a = np.sort(_magnitudes(attribution) + np.float32(1e-7))
    n = a.size
    ranks = np.arange(1, n + 1)
    return MetricResult(float(((2 * ranks - n - 1) * a).sum() / (n * a.sum())))


def complexity(attribution: np.ndarray) -> MetricResult:
    """Shannon entropy (nats) of the magnitudes as a distribution; undefined for an all-zero map."""
    a = _magnitudes(attribution)
    total = np.abs(a).sum()
    if total == 0:
        return undefined("the map is all zero: its magnitudes are no distribution")
    p = a / total
    return MetricResult(float(-(p * np.log(p + 1e-12)).sum()))


def effective_complexity(attribution: np.ndarray, eps: float = 1e-5) -> MetricResult:
    """Number of pixels whose normalised magnitude exceeds ``eps``."""
    return MetricResult(float(np.sum(_magnitudes(attribution) > eps)))


PER_IMAGE = {
    "Sparseness": lambda image, attribution, params: sparseness(attribution),
    "Complexity": lambda image, attribution, params: complexity(attribution),
    "EffectiveComplexity": lambda image, attribution, params: effective_complexity(
        attribution, float(params["eps"])
    ),
}
