"""The perturbation metrics of the public CamLIME repository's MyFaithfulness.py, batched on the device.

Each function is registered with its spec (:func:`~cnnxai.metrics.specs.metric`: family, direction, meaning,
declared parameters); it takes the image's shared state (:class:`~cnnxai.metrics.image.ImageMetrics`), the
explainer's map (H,W) and the metric's parameters, and returns a :class:`~cnnxai.metrics.result.MetricResult`.
Orders (argsort) and attribution sums are taken exactly as Quantus 0.6.0 takes them, in numpy on the float32
normalised map, so values match Quantus's one for one on inputs where Quantus is right
(tests/test_metrics_quantus.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy.spatial.distance import cdist
from skimage.segmentation import slic

from cnnxai.metrics.image import ImageMetrics, normalise_by_max
from cnnxai.metrics.perturbation import replace
from cnnxai.metrics.result import CONSTANT_MAP, MetricResult, correlation, undefined
from cnnxai.metrics.specs import baseline_option, metric
from cnnxai.options import Option, at_least, positive


def _subset_fits(params: Mapping[str, Any], shape: tuple[int, int, int], unit: str) -> str | None:
    """FaithfulnessCorrelation's subsets must not be larger than the input's features."""
    channels, height, width = shape
    features = height * width if unit == "pixel" else channels * height * width
    subset = params["subset_size"]
    return (
        f"subset_size={subset} exceeds the {features} features of the input"
        if int(subset) > features
        else None
    )


def _step_divides(params: Mapping[str, Any], shape: tuple[int, int, int], unit: str) -> str | None:
    """Groups of features_in_step features must split the input's pixels evenly (as Quantus requires)."""
    _, height, width = shape
    step = params["features_in_step"]
    if (height * width) % int(step):
        return (
            f"features_in_step={step} must divide the {height * width} pixels of the {height}x{width} input"
        )
    return None


FEATURES_IN_STEP = "features per group (must divide the input's pixels)"


@metric(
    "FaithfulnessCorrelation", "faithfulness", higher_is_better=True,
    description="Pearson correlation, over nr_runs random subsets of subset_size features, between the subset's "
    "attribution sum and the drop of the target's logit when the subset is set to the baseline "
    "(Bhatt et al. 2020; Quantus FaithfulnessCorrelation)",
    options=(
        Option("nr_runs", 100, "random subsets drawn", check=positive),
        Option("subset_size", 224, "features per subset", check=positive),
        baseline_option("black"),
    ),
    input_check=_subset_fits,
)  # fmt: skip
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
    """Consecutive groups of ``step`` features of ``order`` (n,step); the spec's input check saw that they split
    evenly."""
    return order.reshape(-1, step)


@metric(
    "FaithfulnessEstimate", "faithfulness", higher_is_better=True,
    description="Pearson correlation between the attribution sums of consecutive groups of features_in_step "
    "features (by attribution, descending) and the logit drop when each group alone is set to the "
    "baseline (Alvarez-Melis & Jaakkola 2018; Quantus FaithfulnessEstimate)",
    options=(Option("features_in_step", 224, FEATURES_IN_STEP, check=positive), baseline_option("black")),
    input_check=_step_divides,
)  # fmt: skip
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


@metric(
    "MonotonicityCorrelation", "faithfulness", higher_is_better=True,
    description="Spearman correlation between the |attribution| sums of groups of features_in_step features "
    "(ascending) and the variance of the target's probability over nr_samples baseline fills of "
    "each group (Nguyen & Martinez 2020; Quantus MonotonicityCorrelation)",
    options=(
        Option("nr_samples", 10, "baseline fills of each group", check=positive),
        Option("features_in_step", 3136, FEATURES_IN_STEP, check=positive),
        baseline_option("uniform"),
        Option("eps", 1e-5, "below this p(target), the variances are not divided by p(target)^2", check=at_least(0)),
    ),
    input_check=_step_divides,
)  # fmt: skip
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
    # The recursion reads each region's sum before the next fill: one copy of the input to the host (a single
    # synchronisation), not one read-back per region.
    x = image.pixels.values.double().cpu().numpy()  # (C, H*W)
    channels, total = x.shape[0], x.size
    current = float(x.mean())
    fills = np.empty(len(regions))
    for i, pixels in enumerate(regions):
        fills[i] = current
        replaced = float(x[:, pixels].sum())
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
        return replace(base, masks, fill_of_t).reshape(-1, *image.x.shape)

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


@metric(
    "IROF", "faithfulness", higher_is_better=True,
    description="Iterative removal of features: SLIC superpixels of the input (n_segments, compactness) removed "
    "cumulatively by mean attribution (descending), set to the baseline; area over the curve of "
    "p(target) / p0, i.e. (number of segments) - trapezoid area (Rieger & Hansen 2020; Quantus IROF)",
    options=(
        Option("n_segments", 100, "SLIC's approximate number of superpixels", check=positive),
        Option("compactness", 10.0, "SLIC's compactness", check=positive),
        baseline_option("mean"),
    ),
)  # fmt: skip
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


@metric(
    "Sufficiency", "faithfulness", higher_is_better=True,
    description="Within a group of images: for each image, the share of the others whose explanation lies within "
    "threshold (standardised Euclidean distance of the |map|s, divided by the group's largest) that "
    "share its predicted class (Dasgupta et al. 2022; Quantus Sufficiency). Needs groups of several images",
    options=(Option("threshold", 0.6, "largest distance (0..1, relative to the group's largest) of a neighbour", check=positive),),
    batch_level=True,
)  # fmt: skip
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


@metric(
    "RegionPerturbation", "faithfulness", higher_is_better=True,
    description="Drop of the target's probability after setting the regions_evaluation most relevant "
    "patch_size x patch_size patches of a grid (by attribution sum) to the baseline, cumulatively; "
    "the mean drop over the regions (AOPC, Samek et al. 2016; Quantus RegionPerturbation, whose own "
    "declared direction 'lower' is wrong for this most-relevant-first order)",
    options=(
        Option("patch_size", 14, "side of the grid's square patches, in pixels", check=positive),
        Option("regions_evaluation", 1, "patches removed, most relevant first", check=positive),
        baseline_option("uniform"),
    ),
)  # fmt: skip
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
