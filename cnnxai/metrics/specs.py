"""What each metric is: its family, which direction is better, its declared parameters and meaning.

Every metric is registered next to its function by the :func:`metric` decorator, so a metric's function, its
description and its parameters (:class:`~cnnxai.options.Option`: default, type, checks) are written once, in
one place. This module imports none of the function modules: ``cnnxai.metrics`` imports them (registering
them in its fixed order), and they import this module.

The parameters' defaults are those of the public CamLIME repository's ``MyFaithfulness.py`` /
``MyComplexity.py`` and of the RISE protocol (Petsiuk et al. 2018), with one deliberate change: the
repository's ``'uniform'`` baseline drew from U(0,1), which is out of range for ImageNet-normalised inputs;
ours draws from U(min x, max x) of the image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnnxai.errors import UserInputError
from cnnxai.options import Option, split_assignment
from cnnxai.registry import Registry

FAMILIES = ("faithfulness", "complexity", "localisation")

# Baselines, all valid in the normalised input space (values the image itself spans).
BASELINES = {
    "black": "the image's minimum over all channels (Quantus 'black')",
    "white": "the image's maximum over all channels",
    "mean": "the image's mean over all channels and pixels",
    "uniform": "one value per perturbed sample drawn from U(min x, max x) of the image",
    "zeros": "0 in normalised space: the dataset's mean colour",
}
SUBSTRATES = ("zeros", "blur", "mean")

# A metric's function. Per image: fn(state, attribution (H,W), params) -> MetricResult, where the state is an
# ImageMetrics (faithfulness, complexity) or a GroundTruth (localisation). Batch level (``batch_level=True``):
# fn(maps, predicted, **params) -> one MetricResult per map.
MetricFn = Callable[..., Any]
# Whether parameters fit an input: fn(params, shape (C,H,W), feature unit) -> a complaint naming the parameter
# ("subset_size=300 exceeds ..."), or None.
InputCheck = Callable[[Mapping[str, Any], tuple[int, int, int], str], str | None]


@dataclass(frozen=True)
class MetricSpec:
    """One registered metric: its function, family, direction, one-line description and declared parameters.

    ``batch_level`` metrics are scored over a group of images (Sufficiency), not one image at a time.
    ``input_check`` refuses parameters that do not fit the input's shape, before any work.
    """

    name: str
    family: str
    higher_is_better: bool
    description: str
    options: tuple[Option, ...]
    fn: MetricFn
    batch_level: bool = False
    input_check: InputCheck | None = None

    @property
    def params(self) -> dict[str, Any]:
        """The parameters' defaults, {name: default}, in declaration order."""
        return {option.name: option.default for option in self.options}

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"


METRICS: Registry[MetricSpec] = Registry("metric", "no metric is registered", case_insensitive=True)


def metric(
    name: str,
    family: str,
    higher_is_better: bool,
    description: str,
    options: Sequence[Option] = (),
    batch_level: bool = False,
    input_check: InputCheck | None = None,
) -> Callable[[MetricFn], MetricFn]:
    """Register the decorated function as metric ``name`` (see :class:`MetricSpec`); the function is returned
    unchanged."""
    if family not in FAMILIES:
        raise ValueError(f"metric {name}: unknown family {family!r}; choose from {', '.join(FAMILIES)}")

    def decorate(fn: MetricFn) -> MetricFn:
        METRICS.add(
            MetricSpec(
                name, family, higher_is_better, description, tuple(options), fn, batch_level, input_check
            )
        )
        METRICS.hint = f"choose from {', '.join(METRICS)}"  # what an unknown name's error lists
        return fn

    return decorate


def family_metrics(family: str) -> tuple[str, ...]:
    """The names of ``family``'s metrics, in registration order."""
    return tuple(name for name, spec in METRICS.items() if spec.family == family)


def metric_spec(name: str) -> MetricSpec:
    """The spec of ``name`` (case-insensitive); a one-line error lists the names for an unknown one."""
    return METRICS.lookup(name)


def baseline_option(default: str) -> Option:
    """The ``baseline`` parameter: the fill of perturbed features, one of :data:`BASELINES`."""
    return Option(
        "baseline", default, "fill of perturbed features: " + ", ".join(BASELINES), choices=tuple(BASELINES)
    )


def resolve_settings(
    metrics: Sequence[str], overrides: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Parameters of each metric: the defaults, with ``overrides`` ('Metric.param' -> text, from ``--set``)
    parsed and checked by the declared options. Errors are one line starting with ``--set Metric.param``."""
    settings = {name: METRICS[name].params for name in metrics}
    for key, text in (overrides or {}).items():
        try:  # the one reader of NAME.KEY=VALUE, as --set's own
            metric_name, param, text = split_assignment(f"{key}={text}", "Deletion.step=448")
        except ValueError as error:
            raise UserInputError(f"--set: {error}") from None
        try:
            spec = metric_spec(metric_name)
        except UserInputError as error:
            raise UserInputError(f"--set {key}: {error}") from None
        if spec.name not in settings:
            raise UserInputError(f"--set {key}: metric {spec.name} is not among the metrics of this run")
        settings[spec.name][param] = METRICS.option_from_text(
            spec.name, param, text, f"--set {spec.name}.{param}"
        )
    return settings


def metric_settings(
    metrics: Sequence[str], values: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Parameters of each metric: the defaults, with ``values`` (metric -> {param: value}) checked and applied.
    The Python counterpart of :func:`resolve_settings`."""
    values = values or {}
    unknown = [name for name in values if name not in metrics]
    if unknown:
        raise ValueError(
            f"values for {', '.join(unknown)}, which are not among the metrics {', '.join(metrics)}"
        )
    return {name: METRICS.options(name, values.get(name, {})) for name in metrics}


def check_sizes(settings: Mapping[str, Mapping[str, Any]], shape: tuple[int, ...], unit: str) -> None:
    """Refuse parameters that do not fit an input of ``shape`` (C,H,W) with features of ``unit``, before any
    work: each metric's ``input_check`` (Quantus's checks)."""
    channels, height, width = shape
    for name, params in settings.items():
        check = METRICS[name].input_check
        complaint = check(params, (channels, height, width), unit) if check else None
        if complaint:
            raise UserInputError(f"{name}.{complaint}")
