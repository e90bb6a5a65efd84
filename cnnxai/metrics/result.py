"""A metric's value for one (image, explainer), with the reason when it is undefined; correlations that say why."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats

CONSTANT_MAP = "the map is constant, so it ranks nothing above anything else"


@dataclass(frozen=True)
class MetricResult:
    """``value`` is NaN when the metric is undefined, and ``reason`` then says why (never empty for a NaN).
    ``curve`` holds a perturbation curve where the metric has one (Deletion, Insertion: p(target) per step)."""

    value: float
    reason: str = ""
    curve: np.ndarray | None = None
    seconds: float = 0.0  # time spent on this metric for this map (the shared per-image work excluded)

    def __post_init__(self) -> None:
        if math.isnan(self.value) and not self.reason:
            raise ValueError("a NaN metric value needs a reason")


def undefined(reason: str) -> MetricResult:
    return MetricResult(float("nan"), reason)


def correlation(
    kind: str, attributions: np.ndarray, responses: np.ndarray, what_attributions: str, what_responses: str
) -> MetricResult:
    """Pearson ('pearson') or Spearman ('spearman') correlation of two 1-D series (scipy's, as Quantus).

    Undefined (NaN with the reason) when a series is constant: ``what_*`` name the series in that reason.
    """
    reasons = []
    if np.ptp(attributions) == 0:
        reasons.append(f"{what_attributions} do not vary (constant map)")
    if np.ptp(responses) == 0:
        reasons.append(f"{what_responses} do not vary (the model ignores the perturbations)")
    if reasons:
        return undefined("; ".join(reasons))
    if kind == "pearson":
        value = scipy.stats.pearsonr(attributions, responses)[0]
    elif kind == "spearman":
        value = scipy.stats.spearmanr(attributions, responses)[0]
    else:
        raise ValueError(f"unknown correlation {kind!r}")
    return MetricResult(float(value))
