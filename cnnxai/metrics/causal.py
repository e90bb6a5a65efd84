"""Deletion and insertion (RISE's causal metrics, Petsiuk et al. 2018), batched, on any device.

Pixels are ranked by the map, highest first; ties go in raster order (a stable sort), so piecewise-constant
maps such as LIME's get a reproducible curve. Step i (i = 0..n, n = ceil(H*W / step)) shows the image with
the first i*step pixels (all channels) taken from the finishing image and the rest from the starting one:
deletion goes from the input to the substrate, insertion from the substrate to the input. The curve is
p(target) per step; the score is its trapezoid area on [0,1]. Unlike RISE's reference code, nothing is edited
in place (its numpy edits are lost on GPU tensors), and size and channels come from the input.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from cnnxai.errors import UserInputError
from cnnxai.metrics.image import ImageMetrics
from cnnxai.metrics.perturbation import replace
from cnnxai.metrics.result import CONSTANT_MAP, MetricResult, undefined
from cnnxai.metrics.specs import SUBSTRATES, metric
from cnnxai.options import Option, positive

# RISE's blur of the insertion substrate: an 11x11 kernel, sigma 5 (also Deletion's, when it is set to 'blur').
BLUR_SIZE, BLUR_SIGMA = 11, 5.0


def _odd(value: int) -> str | None:
    return None if value > 0 and value % 2 == 1 else "must be a positive odd number of pixels"


def _step_option() -> Option:
    return Option("step", 224, "pixels removed (deletion) or inserted (insertion) per step", check=positive)


def _substrate_option(default: str) -> Option:
    return Option(
        "substrate", default, "the image deletion ends at / insertion starts from: " + ", ".join(SUBSTRATES),
        choices=SUBSTRATES,
    )  # fmt: skip


def gaussian_kernel(size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """RISE's blur kernel: a centred unit impulse on a size x size grid, Gaussian-filtered with ``sigma``."""
    impulse = np.zeros((size, size))
    impulse[size // 2, size // 2] = 1.0
    return gaussian_filter(impulse, sigma)


def blurred(x: torch.Tensor, size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Each channel of ``x`` (C,H,W) convolved with :func:`gaussian_kernel` (zero padding): (C,H,W)."""
    if size < 1 or size % 2 == 0:
        raise UserInputError(f"Insertion.blur_size={size}: use an odd number of pixels")
    kernel = torch.as_tensor(gaussian_kernel(size, sigma), dtype=x.dtype, device=x.device)
    weight = kernel.expand(x.shape[0], 1, size, size)
    return F.conv2d(x[None], weight, padding=size // 2, groups=x.shape[0])[0]


def substrate(image: ImageMetrics, params: dict[str, Any]) -> torch.Tensor:
    """The image that deletion ends at / insertion starts from, (C,H*W), cached per image."""
    kind = params["substrate"]
    size, sigma = int(params.get("blur_size", BLUR_SIZE)), float(params.get("blur_sigma", BLUR_SIGMA))
    key = ("substrate", kind, size, sigma)
    if key not in image.cache:
        x = image.x
        if kind == "zeros":
            made = torch.zeros_like(x)
        elif kind == "mean":
            made = torch.full_like(x, float(x.mean()))
        else:
            made = blurred(x, size, sigma)
        image.cache[key] = made.reshape(x.shape[0], -1)
    return image.cache[key]


def causal_curve(
    image: ImageMetrics, attribution: np.ndarray, step: int, deleting: bool, params
) -> np.ndarray:
    """p(target) at each of the n+1 steps, float64; the two ends that are the input itself are not re-run."""
    height, width = attribution.shape
    order = np.argsort(-attribution.reshape(-1), kind="stable")
    rank = np.empty(height * width, dtype=np.int64)
    rank[order] = np.arange(height * width)
    steps = math.ceil(height * width / step)
    rank_t = torch.as_tensor(rank, device=image.x.device)
    start, finish = image.pixels.values, substrate(image, params)
    if not deleting:
        start, finish = finish, start
    first = 1 if deleting else 0  # deletion's step 0 and insertion's step n show the input: p is known

    def build(lo: int, hi: int) -> torch.Tensor:
        counts = torch.arange(first + lo, first + hi, device=image.x.device) * step
        return replace(start, rank_t[None, :] < counts[:, None], finish[None]).reshape(-1, *image.x.shape)

    _, probabilities = image.scorer(steps, build)
    if deleting:
        return np.concatenate([[image.probability], probabilities])
    return np.concatenate([probabilities, [image.probability]])


def area(curve: np.ndarray) -> float:
    """Trapezoid area of a curve sampled at n+1 equally spaced points of [0,1]."""
    steps = len(curve) - 1
    return float((curve.sum() - curve[0] / 2 - curve[-1] / 2) / steps)


def _causal(
    image: ImageMetrics, attribution: np.ndarray, params: dict[str, Any], deleting: bool
) -> MetricResult:
    if np.ptp(attribution) == 0:
        return undefined(CONSTANT_MAP)
    curve = causal_curve(
        image, np.asarray(attribution, dtype=np.float32), int(params["step"]), deleting, params
    )
    return MetricResult(area(curve), curve=curve)


@metric(
    "Deletion", "faithfulness", higher_is_better=False,
    description="RISE deletion: pixels removed step pixels at a time by attribution (descending, ties in raster "
    "order), replaced by the substrate; area under the curve of p(target) on [0,1] (Petsiuk et al. 2018)",
    options=(_step_option(), _substrate_option("zeros")),
)  # fmt: skip
def deletion(image: ImageMetrics, attribution: np.ndarray, params: dict[str, Any]) -> MetricResult:
    return _causal(image, attribution, params, deleting=True)


@metric(
    "Insertion", "faithfulness", higher_is_better=True,
    description="RISE insertion: pixels inserted step pixels at a time by attribution (descending) into the "
    "substrate (an 11x11, sigma 5 Gaussian blur of the input); area under the curve of p(target) on [0,1]",
    options=(
        _step_option(),
        _substrate_option("blur"),
        Option("blur_size", BLUR_SIZE, "side of the blur kernel of the 'blur' substrate", check=_odd),
        Option("blur_sigma", BLUR_SIGMA, "sigma of the blur kernel of the 'blur' substrate", check=positive),
    ),
)  # fmt: skip
def insertion(image: ImageMetrics, attribution: np.ndarray, params: dict[str, Any]) -> MetricResult:
    return _causal(image, attribution, params, deleting=False)
