"""What MyStability.py reads of an explainer's result, in one place.

For the LIME family and KernelSHAP, ``Attribution.extras`` holds ``superpixel_attributions`` (M,), ``forwards``
(the perturbed images the fit used) and ``score`` (the surrogate's weighted R², NaN where there is none)
(:func:`cnnxai.explainers.lime_family.superpixel_extras`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnnxai.explainers import Attribution


@dataclass(frozen=True)
class SuperpixelExplanation:
    """``attributions`` (M,) float64, ``forwards`` (perturbed images used), ``score`` (weighted R², or NaN)."""

    attributions: np.ndarray
    forwards: int
    score: float


def read_explanation(result: Attribution) -> SuperpixelExplanation:
    """The per-superpixel explanation in ``result``."""
    extras = result.extras
    if "superpixel_attributions" not in extras:
        raise ValueError(
            f"the explainer's result has no per-superpixel attributions (extras: {', '.join(extras)}); "
            "MyStability.py compares the LIME family and KernelSHAP"
        )
    score = extras.get("score", math.nan)
    return SuperpixelExplanation(
        np.asarray(extras["superpixel_attributions"], dtype=np.float64),
        int(extras["forwards"]),
        math.nan if score is None else float(score),
    )
