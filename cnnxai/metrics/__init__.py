"""Faithfulness, complexity and localisation metrics of attribution maps, batched on the model's device.

``ImageMetrics(model, x, target, settings)`` (or ``ImageMetrics.of(session, target, settings)`` on the image's
:class:`~cnnxai.session.ImageSession`) holds what one image's metrics share; ``.score(map, names)``
scores one explainer's (H,W) map; :func:`sufficiency` scores a group of images; :func:`localisation_scores`
scores a map against a ground-truth mask. ``METRICS`` is the registry of every metric: its function, family,
direction and declared parameters, registered with the function by :func:`metric`.

The function modules are imported here, in a fixed order, so that they register themselves and ``METRICS``
keeps its order: faithfulness, causal (Deletion, Insertion), complexity, localisation.
"""

# isort: off
# Registration, in the order of METRICS (each module registers its metrics as it is imported).
from cnnxai.metrics import faithfulness  # noqa: F401  FaithfulnessCorrelation .. RegionPerturbation
from cnnxai.metrics import causal  # noqa: F401  Deletion, Insertion
from cnnxai.metrics import complexity  # noqa: F401  Sparseness, Complexity, EffectiveComplexity
from cnnxai.metrics import localisation  # noqa: F401  PointingGame .. AUC

# isort: on
from cnnxai.metrics.faithfulness import sufficiency
from cnnxai.metrics.image import ImageMetrics, normalise_by_max
from cnnxai.metrics.localisation import GroundTruth, localisation_scores
from cnnxai.metrics.perturbation import FEATURE_UNITS, FeatureView, TargetScorer
from cnnxai.metrics.result import MetricResult, undefined
from cnnxai.metrics.specs import (
    BASELINES,
    METRICS,
    SUBSTRATES,
    MetricSpec,
    check_sizes,
    family_metrics,
    metric,
    metric_settings,
    metric_spec,
    resolve_settings,
)

FAITHFULNESS_METRICS = family_metrics("faithfulness")
COMPLEXITY_METRICS = family_metrics("complexity")
LOCALISATION_METRICS = family_metrics("localisation")

__all__ = [
    "BASELINES",
    "COMPLEXITY_METRICS",
    "FAITHFULNESS_METRICS",
    "FEATURE_UNITS",
    "LOCALISATION_METRICS",
    "METRICS",
    "SUBSTRATES",
    "FeatureView",
    "GroundTruth",
    "ImageMetrics",
    "MetricResult",
    "MetricSpec",
    "TargetScorer",
    "check_sizes",
    "family_metrics",
    "localisation_scores",
    "metric",
    "metric_settings",
    "metric_spec",
    "normalise_by_max",
    "resolve_settings",
    "sufficiency",
    "undefined",
]
