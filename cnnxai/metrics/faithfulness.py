"""The perturbation metrics of the seeds' MyFaithfulness.py, batched on the device (see specs.py for each).

Each function takes the image's shared state (:class:`~cnnxai.metrics.image.ImageMetrics`), the explainer's
map (H,W) and the metric's parameters, and returns a :class:`~cnnxai.metrics.result.MetricResult`. Orders
(argsort) and attribution sums are taken exactly as Quantus 0.6.0 takes them, in numpy on the float32
normalised map, so values match Quantus's one for one on inputs where Quantus is right (tests/test_metrics_quantus.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.spatial.distance import cdist
from skimage.segmentation import slic

from cnnxai.errors import UserInputError
from cnnxai.metrics.image import ImageMetrics, normalise_by_max
from cnnxai.metrics.result import MetricResult, correlation, undefined

CONSTANT_MAP = "the map is constant, so it ranks nothing above anything else"


def check_sizes(settings: dict[str, dict[str, Any]], shape: tuple[int, ...], unit: str) -> None:
    """Refuse parameters that do not fit an input of ``shape`` (C,H,W) (Quantus's checks), before any work."""
    channels, height, width = shape
    pixels = height * width
    features = pixels if unit == "pixel" else channels * pixels
    subset = settings.get("FaithfulnessCorrelation", {}).get("subset_size", 0)
    if int(subset) > features:
        raise UserInputError(
            f"FaithfulnessCorrelation.subset_size={subset} exceeds the {features} features of the input"
        )
    for metric in ("FaithfulnessEstimate", "MonotonicityCorrelation"):
        if metric in settings and pixels % int(settings[metric]["features_in_step"]):
            step = settings[metric]["features_in_step"]
            raise UserInputError(
                f"{metric}.features_in_step={step} must divide the {pixels} pixels of the {height}x{width} input"
            )


def faithfulness_correlation(
    image: ImageMetrics, attribution: np.ndarray, params: dict[str, Any]
) -> MetricResult:
    view = image.view
    runs, size = int(params["nr_runs"]), int(params["subset_size"])
    features = view.attribution(normalise_by_max(attribution))
    subsets = image.draw(
        "FaithfulnessCorrelation.subsets",
        lambda rng: np.stack([rng.choice(view.num_features, size, replace=False) for _ in range(runs)]),
    )
    fills = image.fills(params["baseline"], runs, "FaithfulnessCorrelation.fills")
    logits, _ = image.scorer(runs, lambda s, e: view.replace(view.index_masks(subsets[s:e]), fills[s:e]))
    sums = features[subsets].sum(axis=1, dtype=np.float64)
    return correlation(
        "pearson", sums, image.logit - logits, "attribution sums of the subsets", "logit drops"
    )


def _groups(order: np.ndarray, step: int) -> np.ndarray:
    """Consecutive groups of ``step`` features of ``order`` (n,step); :func:`check_sizes` saw that they split evenly."""
    return order.reshape(-1, step)


def faithfulness_estimate(
    image: ImageMetrics, attribution: np.ndarray, params: dict[str, Any]
) -> MetricResult:
    view = image.view
    features = view.attribution(normalise_by_max(attribution))
    groups = _groups(np.argsort(-features), int(params["features_in_step"]))
    fills = image.fills(params["baseline"], len(groups), "FaithfulnessEstimate.fills")
    logits, _ = image.scorer(
        len(groups), lambda s, e: view.replace(view.index_masks(groups[s:e]), fills[s:e])
    )
    sums = features[groups].sum(axis=1, dtype=np.float64)
    return correlation("pearson", sums, image.logit - logits, "attribution sums of the groups", "logit drops")


def monotonicity_correlation(
    image: ImageMetrics, attribution: np.ndarray, params: dict[str, Any]
) -> MetricResult:
    view = image.view
    samples = int(params["nr_samples"])
    features = view.attribution(np.abs(normalise_by_max(attribution)))
    groups = _groups(np.argsort(features), int(params["features_in_step"]))
    fills = image.fills(params["baseline"], len(groups) * samples, "MonotonicityCorrelation.fills")
    group_of = np.repeat(np.arange(len(groups)), samples)  # copy i perturbs group i // samples

    def build(start: int, stop: int) -> torch.Tensor:
        return view.replace(view.index_masks(groups[group_of[start:stop]]), fills[start:stop])

    _, probabilities = image.scorer(len(group_of), build)
    p0 = image.probability
    scale = 1.0 / abs(p0) ** 2 if abs(p0) >= float(params["eps"]) else 1.0
    variances = ((probabilities.reshape(len(groups), samples) - p0) ** 2).mean(axis=1) * scale
    sums = features[groups].sum(axis=1, dtype=np.float64)
    return correlation(
        "spearman", sums, variances, "|attribution| sums of the groups", "prediction variances"
    )


def _cumulative_fills(image: ImageMetrics, baseline: str, regions: list[np.ndarray], name: str) -> np.ndarray:
    """Fill of each region (pixel index sets) replaced in turn, float64 (R,).

    'mean' is the mean of the image as it is when the region is replaced (earlier regions already filled),
    which is what Quantus's IROF computes; the other baselines do not change as regions are filled.
    """
    if baseline != "mean":
        return image.fills(baseline, len(regions), name).double().cpu().numpy()
    x = image.pixels.values.double()  # (C, H*W)
    channels, total = x.shape[0], x.numel()
    current = float(x.mean())
    fills = np.empty(len(regions))
    for i, pixels in enumerate(regions):
        fills[i] = current
        replaced = float(x[:, torch.as_tensor(pixels, device=x.device)].sum())
        current += (len(pixels) * channels * fills[i] - replaced) / total
    return fills


def _cumulative_scores(image: ImageMetrics, regions: list[np.ndarray], fills: np.ndarray) -> np.ndarray:
    """p(target) after regions 0..i (pixel index sets) are filled, for each i: float64 (R,)."""
    height, width = image.x.shape[1:]
    step_of = np.full(height * width, len(regions), dtype=np.int64)  # the step at which each pixel is filled
    fill_of = np.zeros(height * width)
    for i, pixels in enumerate(regions):
        step_of[pixels] = i
        fill_of[pixels] = fills[i]
    device, dtype = image.x.device, image.x.dtype
    step_of_t = torch.as_tensor(step_of, device=device)
    fill_of_t = torch.as_tensor(fill_of, dtype=dtype, device=device)
    base = image.pixels.values

    def build(start: int, stop: int) -> torch.Tensor:
        steps = torch.arange(start, stop, device=device)
        masks = step_of_t[None, :] <= steps[:, None]
        return torch.where(masks[:, None, :], fill_of_t, base[None]).reshape(-1, *image.x.shape)

    _, probabilities = image.scorer(len(regions), build)
    return probabilities


def _superpixels(image: ImageMetrics, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC superpixels of the normalised input, as Quantus's IROF makes them (cached per image); (H,W) 0..S-1."""
    key = ("IROF.segments", n_segments, compactness)
    if key not in image.cache:
        pixels = np.moveaxis(image.x.cpu().numpy(), 0, -1).astype("double")
        labels = slic(pixels, n_segments=n_segments, compactness=compactness, start_label=0)
        image.cache[key] = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    return image.cache[key]


def irof(image: ImageMetrics, attribution: np.ndarray, params: dict[str, Any]) -> MetricResult:
    if np.ptp(attribution) == 0:
        return undefined(CONSTANT_MAP)
    if image.probability == 0:
        return undefined("the target's probability is 0 on the unperturbed image")
    segments = _superpixels(image, int(params["n_segments"]), float(params["compactness"]))
    count = int(segments.max()) + 1
    if count < 2:
        return undefined("SLIC found a single superpixel in the input")
    a = normalise_by_max(attribution)
    repeated = np.broadcast_to(a, (image.view.map_copies, *a.shape))  # as Quantus repeats it
    means = np.zeros(count)
    for s in range(count):
        means[s] = np.mean(repeated[:, segments == s])
    flat = segments.reshape(-1)
    regions = [np.flatnonzero(flat == s) for s in np.argsort(-means)]
    fills = _cumulative_fills(image, params["baseline"], regions, "IROF.fills")
    ratios = _cumulative_scores(image, regions, fills) / image.probability
    return MetricResult(float(count - np.trapezoid(ratios, dx=1)))


def region_perturbation(image: ImageMetrics, attribution: np.ndarray, params: dict[str, Any]) -> MetricResult:
    size, wanted = int(params["patch_size"]), int(params["regions_evaluation"])
    if np.ptp(attribution) == 0:
        return undefined(CONSTANT_MAP)
    height, width = attribution.shape
    pad_h, pad_w = _padding(height, size), _padding(width, size)
    a = normalise_by_max(attribution)
    repeated = np.broadcast_to(a, (image.view.map_copies, height, width))
    padded = np.pad(repeated, ((0, 0), pad_h, pad_w))
    rows, cols = padded.shape[1] // size, padded.shape[2] // size
    blocks = (
        padded.reshape(len(padded), rows, size, cols, size).transpose(1, 3, 0, 2, 4).reshape(rows * cols, -1)
    )
    order = np.argsort(-blocks.sum(axis=-1))[:wanted]
    regions = []
    for block in order:
        top, left = (block // cols) * size - pad_h[0], (block % cols) * size - pad_w[0]
        ys = np.arange(max(top, 0), min(top + size, height))
        xs = np.arange(max(left, 0), min(left + size, width))
        regions.append((ys[:, None] * width + xs[None, :]).reshape(-1))
    fills = _cumulative_fills(image, params["baseline"], regions, "RegionPerturbation.fills")
    drops = image.probability - _cumulative_scores(image, regions, fills)
    return MetricResult(float(np.mean(drops)))


def _padding(length: int, size: int) -> tuple[int, int]:
    """Padding that makes ``length`` a multiple of ``size``, split as Quantus splits it (floor, ceil)."""
    extra = (-length) % size
    return extra // 2, extra - extra // 2


def sufficiency(maps: Sequence[np.ndarray], predicted: Sequence[int], threshold: float) -> list[MetricResult]:
    """Sufficiency of each of a group of images' maps (H,W), given their predicted classes.

    The maps are made |a| / max|a| per image (Quantus normalises by the whole batch's maximum instead, which
    makes an image's score depend on the others' scales), compared by standardised Euclidean distance with
    the variances of the group (scipy's ``seuclidean``; pixels that do not vary over the group are left out,
    where scipy would divide 0 by 0), and distances are divided by the largest. An image with no other within
    ``threshold`` is undefined (Quantus returns 0 there).
    """
    results: list[MetricResult | None] = [None] * len(maps)
    valid = []
    for i, attribution in enumerate(maps):
        if np.all(np.isfinite(attribution)):
            valid.append(i)
        else:
            results[i] = undefined("the map has non-finite values (NaN or inf)")
    if len(valid) < 2:
        reason = "needs at least two images with finite maps in its group (see --sufficiency-batch)"
        return [r if r is not None else undefined(reason) for r in results]
    rows = np.stack([np.abs(normalise_by_max(maps[i])).reshape(-1) for i in valid]).astype(np.float64)
    variances = np.var(np.vstack([rows, rows]), axis=0, ddof=1)  # what cdist's seuclidean uses by default
    varying = variances > 0
    if varying.any():
        distances = cdist(rows[:, varying], rows[:, varying], "seuclidean", V=variances[varying])
    else:
        distances = np.zeros((len(valid), len(valid)))
    if distances.max() > 0:
        distances = distances / distances.max()
    close = distances <= threshold
    np.fill_diagonal(close, False)
    classes = np.asarray([predicted[i] for i in valid])
    for row, i in enumerate(valid):
        neighbours = int(close[row].sum())
        if neighbours == 0:
            results[i] = undefined(
                f"no other explanation of its group lies within the distance threshold {threshold}"
            )
        else:
            results[i] = MetricResult(float((close[row] & (classes == classes[row])).sum() / neighbours))
    return results  # type: ignore[return-value]


PER_IMAGE = {
    "FaithfulnessCorrelation": faithfulness_correlation,
    "FaithfulnessEstimate": faithfulness_estimate,
    "MonotonicityCorrelation": monotonicity_correlation,
    "IROF": irof,
    "RegionPerturbation": region_perturbation,
}
