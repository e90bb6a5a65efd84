"""Faithfulness and complexity metrics of attribution maps, batched on the model's device.

``ImageMetrics(model, x, target, settings)`` holds what one image's metrics share; ``.score(map, names)``
scores one explainer's (H,W) map; :func:`sufficiency` scores a group of images. ``METRICS`` declares each
metric's family, direction and parameters.
"""

from cnnxai.metrics.faithfulness import sufficiency
from cnnxai.metrics.image import ImageMetrics, normalise_by_max
from cnnxai.metrics.perturbation import FEATURE_UNITS, FeatureView, TargetScorer
from cnnxai.metrics.result import MetricResult
from cnnxai.metrics.specs import (
    BASELINES,
    COMPLEXITY_METRICS,
    FAITHFULNESS_METRICS,
    METRICS,
    MetricSpec,
    metric_spec,
    resolve_settings,
)

__all__ = [
    "BASELINES",
    "COMPLEXITY_METRICS",
    "FAITHFULNESS_METRICS",
    "FEATURE_UNITS",
    "METRICS",
    "FeatureView",
    "ImageMetrics",
    "MetricResult",
    "MetricSpec",
    "TargetScorer",
    "metric_spec",
    "normalise_by_max",
    "resolve_settings",
    "sufficiency",
]
