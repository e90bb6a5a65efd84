"""Localisation metrics: how much of an attribution map lies on the ground-truth evidence (a boolean mask).

All metrics take a map (H,W) already post-processed (by default its positive part: the evidence *for* the
class) and the mask (H,W), and are higher-is-better in [0,1]. Where Quantus 0.6.0 ranks pixels with
``argsort`` or tests ``a == max``, ties are broken by pixel order or all counted as hits: a constant map then
scores a perfect pointing game, and a piecewise-constant map (LIME's superpixels) scores by where its tied
pixels happen to sit in memory. Here ties are averaged: each score is its expectation over a uniformly random
order of tied pixels, so a constant map scores exactly the chance level |mask|/(H*W) in the pointing game
and in rank accuracy, and 0.5 in AUC. On maps without ties the values equal Quantus's (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LocalisationMetric:
    name: str
    fn: Callable[..., float]
    definition: str


def _flat(attribution: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if attribution.shape != mask.shape:
        raise ValueError(f"map {attribution.shape} and mask {mask.shape} differ in shape")
    return attribution.astype(np.float64).ravel(), mask.astype(bool).ravel()


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """The mask grown by ``pixels`` in the max (chessboard) norm: bool (H,W)."""
    if pixels <= 0:
        return mask.astype(bool)
    tensor = torch.from_numpy(mask.astype(np.float32))[None, None]
    return F.max_pool2d(tensor, 2 * pixels + 1, stride=1, padding=pixels)[0, 0].numpy() > 0


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


def pointing_game(attribution: np.ndarray, mask: np.ndarray, tolerance: int = 0) -> float:
    """1 if the map's maximum lies on the mask (grown by ``tolerance`` pixels), else 0; with tied maxima, the
    fraction of them on the mask (Zhang et al. 2018; Quantus ``PointingGame``)."""
    grown = dilate(mask, tolerance) if tolerance else mask
    values, inside = _flat(attribution, grown)
    top = values == values.max()
    return float((top & inside).sum() / top.sum())


def relevance_mass_accuracy(attribution: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's total relevance that lies on the mask (Arras et al. 2022; Quantus
    ``RelevanceMassAccuracy``); NaN when the total is not positive (nothing to share)."""
    values, inside = _flat(attribution, mask)
    total = values.sum()
    if total <= 0:
        return float("nan")
    return float(values[inside].sum() / total)


def relevance_rank_accuracy(attribution: np.ndarray, mask: np.ndarray) -> float:
    """Of the K = |mask| highest-ranked pixels, the share on the mask (Arras et al. 2022; Quantus
    ``RelevanceRankAccuracy``), ties averaged."""
    values, inside = _flat(attribution, mask)
    k = int(inside.sum())
    if k == 0:
        return float("nan")
    return expected_hits_in_top(values, inside, k) / k


def top_k_intersection(attribution: np.ndarray, mask: np.ndarray, k: int = 50) -> float:
    """Of the k highest-ranked pixels, the share on the mask (Theiner et al. 2021; Quantus
    ``TopKIntersection``), ties averaged."""
    values, inside = _flat(attribution, mask)
    if not inside.any():
        return float("nan")
    return expected_hits_in_top(values, inside, k) / min(k, values.size)


def roc_auc(attribution: np.ndarray, mask: np.ndarray) -> float:
    """The area under the ROC curve of the map as a detector of mask pixels (Quantus ``AUC``): the chance that
    a random mask pixel outranks a random other pixel, ties counting one half (Mann-Whitney U)."""
    values, inside = _flat(attribution, mask)
    positives, negatives = int(inside.sum()), int((~inside).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(values.size, dtype=np.float64)
    # Average ranks (1-based) over runs of equal values.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], values.size]
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    u = ranks[inside].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


METRICS: dict[str, LocalisationMetric] = {
    m.name: m
    for m in [
        LocalisationMetric("PointingGame", pointing_game, "the maximum lies within the tolerance of the evidence (tied maxima: share)"),
        LocalisationMetric("PointingGameExact", pointing_game, "the maximum lies on the evidence itself (no tolerance; Quantus's)"),
        LocalisationMetric("RelevanceMassAccuracy", relevance_mass_accuracy, "share of the total relevance on the evidence"),
        LocalisationMetric("RelevanceRankAccuracy", relevance_rank_accuracy, "share of the |mask| top pixels on the evidence"),
        LocalisationMetric("TopKIntersection", top_k_intersection, "share of the k top pixels on the evidence"),
        LocalisationMetric("AUC", roc_auc, "ROC AUC of the map as a detector of evidence pixels (0.5 = chance)"),
    ]
}  # fmt: skip


def default_tolerance(size: int) -> int:
    """The pointing game's tolerance in pixels for images of ``size`` pixels per side: Zhang et al.'s 15 pixels
    at 224, scaled (4 at 64)."""
    return int(round(15 * size / 224))


def localisation_scores(
    attribution: np.ndarray, mask: np.ndarray, top_k: int = 50, tolerance: int = 4
) -> dict[str, float]:
    """Every metric of ``METRICS`` for one map (H,W) and mask (H,W)."""
    if not np.all(np.isfinite(attribution)):
        return {name: float("nan") for name in METRICS}
    return {
        "PointingGame": pointing_game(attribution, mask, tolerance),
        "PointingGameExact": pointing_game(attribution, mask, 0),
        "RelevanceMassAccuracy": relevance_mass_accuracy(attribution, mask),
        "RelevanceRankAccuracy": relevance_rank_accuracy(attribution, mask),
        "TopKIntersection": top_k_intersection(attribution, mask, top_k),
        "AUC": roc_auc(attribution, mask),
    }
