"""Localisation metrics: how much of an attribution map lies on the ground-truth evidence (a boolean mask).

All metrics take a map (H,W) already post-processed (by default its positive part: the evidence *for* the
class) and the mask (H,W), and are higher-is-better in [0,1]. Where Quantus 0.6.0 ranks pixels with
``argsort`` or tests ``a == max``, ties are broken by pixel order or all counted as hits: a constant map then
scores a perfect pointing game, and a piecewise-constant map (LIME's superpixels) scores by where its tied
pixels happen to sit in memory. Here ties are averaged: each score is its expectation over a uniformly random
order of tied pixels, so a constant map scores exactly the chance level |mask|/(H*W) in the pointing game
and in rank accuracy, and 0.5 in AUC. On maps without ties the values equal Quantus's (tested).

Each function is registered with its spec (:func:`~cnnxai.metrics.specs.metric`, family ``'localisation'``)
and takes the image's :class:`GroundTruth`, the map and the metric's parameters;
:func:`localisation_scores` scores one map with a list of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnxai.images import dilate
from cnnxai.metrics.result import MetricResult, undefined
from cnnxai.metrics.specs import METRICS, metric
from cnnxai.options import Option, at_least, positive

EMPTY_MASK = "the mask is empty: there is no evidence to find"


@dataclass(frozen=True)
class GroundTruth:
    """The evidence of one image: ``mask`` bool (H,W), True on the pixels of the object."""

    mask: np.ndarray

    def __post_init__(self) -> None:
        if np.ndim(self.mask) != 2:
            raise ValueError(f"the mask must be (H,W), got {np.shape(self.mask)}")


def _flat(attribution: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if attribution.shape != mask.shape:
        raise ValueError(f"map {attribution.shape} and mask {mask.shape} differ in shape")
    return attribution.astype(np.float64).ravel(), mask.astype(bool).ravel()


def expected_hits_in_top(values: np.ndarray, inside: np.ndarray, k: int) -> float:
    """The expected number of mask pixels among the k highest values, ties in random order.

    Pixels strictly above the k-th largest value are all taken; of the pixels equal to it, the remaining
    places are filled at random, so each contributes (places / tied) in expectation.
    """
    k = int(min(max(k, 0), values.size))
    if k == 0:
        return 0.0
    threshold = np.partition(values, values.size - k)[values.size - k]
    above = values > threshold
    tied = values == threshold
    places = k - int(above.sum())
    return float((above & inside).sum()) + places * float((tied & inside).sum()) / float(tied.sum())


def default_tolerance(size: int) -> int:
    """The pointing game's tolerance in pixels for images of ``size`` pixels per side: Zhang et al.'s 15 pixels
    at 224, scaled (4 at 64)."""
    return int(round(15 * size / 224))


def _pointing(attribution: np.ndarray, mask: np.ndarray, tolerance: int) -> MetricResult:
    """1 if the map's maximum lies on the mask grown by ``tolerance`` pixels, else 0; with tied maxima, the
    fraction of them on it."""
    grown = dilate(mask, tolerance) if tolerance else mask
    values, inside = _flat(attribution, grown)
    top = values == values.max()
    return MetricResult(float((top & inside).sum() / top.sum()))


@metric(
    "PointingGame", "localisation", higher_is_better=True,
    description="the maximum lies within the tolerance of the evidence (tied maxima: share)",
    options=(
        Option("tolerance", None, "pixels the mask is grown by (default: Zhang et al.'s 15 px at 224, scaled to "
               "the image's larger side: 4 at 64)", parse=int, check=at_least(0)),
    ),
)  # fmt: skip
def pointing_game(truth: GroundTruth, attribution: np.ndarray, params: Mapping[str, Any]) -> MetricResult:
    """The pointing game with a tolerance (Zhang et al. 2018; Quantus ``PointingGame`` has none)."""
    tolerance = params["tolerance"]
    if tolerance is None:
        tolerance = default_tolerance(max(truth.mask.shape))
    return _pointing(attribution, truth.mask, int(tolerance))


@metric(
    "PointingGameExact", "localisation", higher_is_better=True,
    description="the maximum lies on the evidence itself (no tolerance; Quantus's)",
)  # fmt: skip
def pointing_game_exact(
    truth: GroundTruth, attribution: np.ndarray, params: Mapping[str, Any]
) -> MetricResult:
    """The pointing game on the mask itself (Quantus ``PointingGame``, ties averaged)."""
    return _pointing(attribution, truth.mask, 0)


@metric(
    "RelevanceMassAccuracy", "localisation", higher_is_better=True,
    description="share of the total relevance on the evidence",
)  # fmt: skip
def relevance_mass_accuracy(
    truth: GroundTruth, attribution: np.ndarray, params: Mapping[str, Any]
) -> MetricResult:
    """Share of the map's total relevance that lies on the mask (Arras et al. 2022; Quantus
    ``RelevanceMassAccuracy``); undefined when the total is not positive (nothing to share)."""
    values, inside = _flat(attribution, truth.mask)
    total = values.sum()
    if total <= 0:
        return undefined("no positive relevance in the map (its sum is not positive)")
    return MetricResult(float(values[inside].sum() / total))


@metric(
    "RelevanceRankAccuracy", "localisation", higher_is_better=True,
    description="share of the |mask| top pixels on the evidence",
)  # fmt: skip
def relevance_rank_accuracy(
    truth: GroundTruth, attribution: np.ndarray, params: Mapping[str, Any]
) -> MetricResult:
    """Of the K = |mask| highest-ranked pixels, the share on the mask (Arras et al. 2022; Quantus
    ``RelevanceRankAccuracy``), ties averaged."""
    values, inside = _flat(attribution, truth.mask)
    k = int(inside.sum())
    if k == 0:
        return undefined(EMPTY_MASK)
    return MetricResult(expected_hits_in_top(values, inside, k) / k)


@metric(
    "TopKIntersection", "localisation", higher_is_better=True,
    description="share of the k top pixels on the evidence",
    options=(Option("k", 50, "pixels ranked highest by the map", check=positive),),
)  # fmt: skip
def top_k_intersection(
    truth: GroundTruth, attribution: np.ndarray, params: Mapping[str, Any]
) -> MetricResult:
    """Of the k highest-ranked pixels, the share on the mask (Theiner et al. 2021; Quantus
    ``TopKIntersection``), ties averaged."""
    values, inside = _flat(attribution, truth.mask)
    if not inside.any():
        return undefined(EMPTY_MASK)
    k = int(params["k"])
    return MetricResult(expected_hits_in_top(values, inside, k) / min(k, values.size))


@metric(
    "AUC", "localisation", higher_is_better=True,
    description="ROC AUC of the map as a detector of evidence pixels (0.5 = chance)",
)  # fmt: skip
def roc_auc(truth: GroundTruth, attribution: np.ndarray, params: Mapping[str, Any]) -> MetricResult:
    """The area under the ROC curve of the map as a detector of mask pixels (Quantus ``AUC``): the chance that
    a random mask pixel outranks a random other pixel, ties counting one half (Mann-Whitney U)."""
    values, inside = _flat(attribution, truth.mask)
    positives, negatives = int(inside.sum()), int((~inside).sum())
    if positives == 0:
        return undefined(EMPTY_MASK)
    if negatives == 0:
        return undefined("the mask covers the whole image: no pixel to rank below it")
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(values.size, dtype=np.float64)
    # Average ranks (1-based) over runs of equal values.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], values.size]
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    u = ranks[inside].sum() - positives * (positives + 1) / 2.0
    return MetricResult(float(u / (positives * negatives)))


def localisation_scores(
    attribution: np.ndarray, mask: np.ndarray, settings: Mapping[str, Mapping[str, Any]]
) -> dict[str, MetricResult]:
    """Each localisation metric of ``settings`` (metric -> parameters, e.g. from
    :func:`~cnnxai.metrics.specs.metric_settings`), in its order, for one map (H,W) and its mask (H,W)."""
    if not np.all(np.isfinite(attribution)):
        return {name: undefined("the map has non-finite values (NaN or inf)") for name in settings}
    truth = GroundTruth(np.asarray(mask))
    results = {}
    for name, params in settings.items():
        spec = METRICS[name]
        if spec.family != "localisation":
            raise ValueError(f"{name} is a {spec.family} metric, not a localisation metric")
        results[name] = spec.fn(truth, attribution, params)
    return results
