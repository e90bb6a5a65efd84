"""What each metric is: its family, which direction is better, its parameters (the seeds' values) and meaning.

The parameters are those of the seeds' ``MyFaithfulness.py`` / ``MyComplexity.py`` (algorithms.md 5) and of
the RISE protocol (algorithms.md 7), with one deliberate change: the seeds' ``'uniform'`` baseline drew from
U(0,1), which is out of range for ImageNet-normalised inputs; ours draws from U(min x, max x) of the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnnxai.errors import UserInputError

FAMILIES = ("faithfulness", "complexity")

# Baselines, all valid in the normalised input space (values the image itself spans).
BASELINES = {
    "black": "the image's minimum over all channels (Quantus 'black')",
    "white": "the image's maximum over all channels",
    "mean": "the image's mean over all channels and pixels",
    "uniform": "one value per perturbed sample drawn from U(min x, max x) of the image",
    "zeros": "0 in normalised space: the dataset's mean colour",
}


@dataclass(frozen=True)
class MetricSpec:
    """One metric. ``params`` are the defaults; ``batch_level`` metrics are scored over a group of images."""

    name: str
    family: str
    higher_is_better: bool
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    batch_level: bool = False

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in [
        MetricSpec(
            "FaithfulnessCorrelation", "faithfulness", True,
            "Pearson correlation, over nr_runs random subsets of subset_size features, between the subset's "
            "attribution sum and the drop of the target's logit when the subset is set to the baseline "
            "(Bhatt et al. 2020; Quantus FaithfulnessCorrelation)",
            {"nr_runs": 100, "subset_size": 224, "baseline": "black"},
        ),
        MetricSpec(
            "FaithfulnessEstimate", "faithfulness", True,
            "Pearson correlation between the attribution sums of consecutive groups of features_in_step "
            "features (by attribution, descending) and the logit drop when each group alone is set to the "
            "baseline (Alvarez-Melis & Jaakkola 2018; Quantus FaithfulnessEstimate)",
            {"features_in_step": 224, "baseline": "black"},
        ),
        MetricSpec(
            "MonotonicityCorrelation", "faithfulness", True,
            "Spearman correlation between the |attribution| sums of groups of features_in_step features "
            "(ascending) and the variance of the target's probability over nr_samples baseline fills of "
            "each group (Nguyen & Martinez 2020; Quantus MonotonicityCorrelation)",
            {"nr_samples": 10, "features_in_step": 3136, "baseline": "uniform", "eps": 1e-5},
        ),
        MetricSpec(
            "IROF", "faithfulness", True,
            "Iterative removal of features: SLIC superpixels of the input (n_segments, compactness) removed "
            "cumulatively by mean attribution (descending), set to the baseline; area over the curve of "
            "p(target) / p0, i.e. (number of segments) - trapezoid area (Rieger & Hansen 2020; Quantus IROF)",
            {"n_segments": 100, "compactness": 10.0, "baseline": "mean"},
        ),
        MetricSpec(
            "Sufficiency", "faithfulness", True,
            "Within a group of images: for each image, the share of the others whose explanation lies within "
            "threshold (standardised Euclidean distance of the |map|s, divided by the group's largest) that "
            "share its predicted class (Dasgupta et al. 2022; Quantus Sufficiency). Needs groups of several images",
            {"threshold": 0.6},
            batch_level=True,
        ),
        MetricSpec(
            "RegionPerturbation", "faithfulness", True,
            "Drop of the target's probability after setting the regions_evaluation most relevant "
            "patch_size x patch_size patches of a grid (by attribution sum) to the baseline, cumulatively; "
            "the mean drop over the regions (AOPC, Samek et al. 2016; Quantus RegionPerturbation, whose own "
            "declared direction 'lower' is wrong for this most-relevant-first order)",
            {"patch_size": 14, "regions_evaluation": 1, "baseline": "uniform"},
        ),
        MetricSpec(
            "Deletion", "faithfulness", False,
            "RISE deletion: pixels removed step pixels at a time by attribution (descending, ties in raster "
            "order), replaced by the substrate; area under the curve of p(target) on [0,1] (Petsiuk et al. 2018)",
            {"step": 224, "substrate": "zeros"},
        ),
        MetricSpec(
            "Insertion", "faithfulness", True,
            "RISE insertion: pixels inserted step pixels at a time by attribution (descending) into the "
            "substrate (an 11x11, sigma 5 Gaussian blur of the input); area under the curve of p(target) on [0,1]",
            {"step": 224, "substrate": "blur", "blur_size": 11, "blur_sigma": 5.0},
        ),
        MetricSpec(
            "Sparseness", "complexity", True,
            "Gini index of |map| / max|map| (Chalasani et al. 2020; Quantus Sparseness)",
        ),
        MetricSpec(
            "Complexity", "complexity", False,
            "Shannon entropy of |map| / sum|map| (Bhatt et al. 2020; Quantus Complexity)",
        ),
        MetricSpec(
            "EffectiveComplexity", "complexity", False,
            "Number of pixels with |map| / max|map| > eps (Nguyen & Martinez 2020; Quantus EffectiveComplexity)",
            {"eps": 1e-5},
        ),
    ]
}  # fmt: skip

FAITHFULNESS_METRICS = tuple(name for name, spec in METRICS.items() if spec.family == "faithfulness")
COMPLEXITY_METRICS = tuple(name for name, spec in METRICS.items() if spec.family == "complexity")
SUBSTRATES = ("zeros", "blur", "mean")


def metric_spec(name: str) -> MetricSpec:
    """The spec of ``name`` (case-insensitive); a one-line error lists the names for an unknown one."""
    for known, spec in METRICS.items():
        if known.lower() == name.lower():
            return spec
    raise UserInputError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")


def resolve_settings(
    metrics: list[str], overrides: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Parameters of each metric: the defaults, with ``overrides`` ('Metric.param' -> text) applied and checked."""
    settings = {name: dict(METRICS[name].params) for name in metrics}
    for key, text in (overrides or {}).items():
        metric, _, param = key.partition(".")
        spec = metric_spec(metric)
        if spec.name not in settings:
            raise UserInputError(f"--set {key}: metric {spec.name} is not among the metrics of this run")
        if param not in spec.params:
            known = ", ".join(spec.params) or "none"
            raise UserInputError(
                f"--set {key}: {spec.name} has no parameter {param!r} (its parameters: {known})"
            )
        settings[spec.name][param] = _parse_like(spec.params[param], text, key)
    for name, params in settings.items():
        _check(name, params)
    return settings


def _parse_like(default: Any, text: str, key: str) -> Any:
    try:
        if isinstance(default, bool):
            return {"true": True, "false": False}[text.lower()]
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except (ValueError, KeyError):
        raise UserInputError(f"--set {key}={text}: expected a {type(default).__name__}") from None
    return text


def _check(name: str, params: dict[str, Any]) -> None:
    for key, value in params.items():
        if key == "baseline" and value not in BASELINES:
            raise UserInputError(f"--set {name}.baseline={value}: choose one of {', '.join(BASELINES)}")
        if key == "substrate" and value not in SUBSTRATES:
            raise UserInputError(f"--set {name}.substrate={value}: choose one of {', '.join(SUBSTRATES)}")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0 and key != "eps":
            raise UserInputError(f"--set {name}.{key}={value}: must be positive")
