"""The complexity metrics of the public CamLIME repository's MyComplexity.py: functions of the map alone, on
|a| / max|a|.

Each function is registered with its spec (:func:`~cnnxai.metrics.specs.metric`) and, like every per-image
metric, takes the image's shared state (unused here), the map (H,W) and its parameters. The arithmetic follows
Quantus 0.6.0's (float32 map, the same offsets), so values agree with it to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnxai.metrics.image import ImageMetrics, normalise_by_max
from cnnxai.metrics.result import MetricResult, undefined
from cnnxai.metrics.specs import metric
from cnnxai.options import Option, at_least


def _magnitudes(attribution: np.ndarray) -> np.ndarray:
    return np.abs(normalise_by_max(attribution)).reshape(-1)


@metric(
    "Sparseness", "complexity", higher_is_better=True,
    description="Gini index of |map| / max|map| (Chalasani et al. 2020; Quantus Sparseness)",
)  # fmt: skip
def sparseness(image: ImageMetrics | None, attribution: np.ndarray, params: dict[str, Any]) -> MetricResult:
    """Gini index of the magnitudes (+1e-7, so an all-zero map scores 0): 0 = uniform, towards 1 = one pixel."""
    a = np.sort(_magnitudes(attribution) + np.float32(1e-7))
    n = a.size
    ranks = np.arange(1, n + 1)
    return MetricResult(float(((2 * ranks - n - 1) * a).sum() / (n * a.sum())))


@metric(
    "Complexity", "complexity", higher_is_better=False,
    description="Shannon entropy of |map| / sum|map| (Bhatt et al. 2020; Quantus Complexity)",
)  # fmt: skip
def complexity(image: ImageMetrics | None, attribution: np.ndarray, params: dict[str, Any]) -> MetricResult:
    """Shannon entropy (nats) of the magnitudes as a distribution; undefined for an all-zero map."""
    a = _magnitudes(attribution)
    total = np.abs(a).sum()
    if total == 0:
        return undefined("the map is all zero: its magnitudes are no distribution")
    p = a / total
    return MetricResult(float(-(p * np.log(p + 1e-12)).sum()))


@metric(
    "EffectiveComplexity", "complexity", higher_is_better=False,
    description="Number of pixels with |map| / max|map| > eps (Nguyen & Martinez 2020; Quantus EffectiveComplexity)",
    options=(Option("eps", 1e-5, "the normalised magnitude a pixel must exceed to count", check=at_least(0)),),
)  # fmt: skip
def effective_complexity(
    image: ImageMetrics | None, attribution: np.ndarray, params: dict[str, Any]
) -> MetricResult:
    """Number of pixels whose normalised magnitude exceeds ``eps``."""
    return MetricResult(float(np.sum(_magnitudes(attribution) > float(params["eps"]))))
