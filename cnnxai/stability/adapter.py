"""What MyStability.py reads of an explainer's result, in one place.

The explainers' contract: for the LIME family and KernelSHAP, ``Attribution.extras`` holds
``superpixel_attributions`` (M,), ``forwards`` (the perturbed images the fit used), ``score`` (the surrogate's
weighted R², NaN where there is none) and ``segments``; ``fix_segments(shared, segments)`` makes every such
explainer given that ``shared`` use these superpixels. Until every explainer writes those extras, this module
reads the older ones (the ``explanation`` of LIME / GradLIME / CamLIME, KernelSHAP's ``shap_values``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnxai.explainers import Attribution
from lime_ext import SEGMENTERS

try:
    from cnnxai.explainers.lime_family import fix_segments as _fix_segments
except ImportError:  # before the contract: seed the per-seed segmentation cache instead
    _fix_segments = None


def fix_segments(shared: dict, segments: np.ndarray, seeds: list[int]) -> None:
    """Make every LIME-family explainer (and KernelSHAP) given ``shared`` use ``segments``, for these ``seeds``."""
    if _fix_segments is not None:
        _fix_segments(shared, segments)
        return
    for seed in seeds:  # the key under which lime_family.shared_segments caches one image's superpixels
        for segmenter in SEGMENTERS:
            shared[("segments", int(seed), segmenter)] = segments


@dataclass(frozen=True)
class SuperpixelExplanation:
    """``attributions`` (M,) float64, ``forwards`` (perturbed images used), ``score`` (weighted R², or NaN)."""

    attributions: np.ndarray
    forwards: int
    score: float


def read_explanation(result: Attribution, target: int, options: dict[str, Any]) -> SuperpixelExplanation:
    """The per-superpixel explanation in ``result`` of explaining ``target`` with ``options``."""
    extras = result.extras
    if "superpixel_attributions" in extras:
        score = extras.get("score", math.nan)
        return SuperpixelExplanation(
            np.asarray(extras["superpixel_attributions"], dtype=np.float64),
            int(extras["forwards"]),
            math.nan if score is None else float(score),
        )
    if "explanation" in extras:  # LIME, GradLIME, CamLIME before the contract
        label = extras["explanation"].labels[int(target)]
        return SuperpixelExplanation(
            np.asarray(label.attributions, dtype=np.float64), int(options["num_samples"]), float(label.score)
        )
    if "shap_values" in extras:  # KernelSHAP before the contract
        return SuperpixelExplanation(
            np.asarray(extras["shap_values"], dtype=np.float64), int(options["num_samples"]), math.nan
        )
    raise ValueError(
        f"the explainer's result has no per-superpixel attributions (extras: {', '.join(extras)})"
    )
