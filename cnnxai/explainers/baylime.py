"""BayLIME (Zhao et al., UAI 2021): LIME's neighbourhood fitted by a Bayesian ridge, with a non-informative prior
or BayLIME's Grad-CAM prior mean; on the same shared samples as LIME and GradLIME, so the three compare at equal N.

The surrogate is :meth:`lime_ext.Neighbourhood.fit_bayesian` (docs/method.md, "#baylime"): attributions are the
posterior mean. ``prior='gradcam'`` takes the per-superpixel Grad-CAM mean a of GradLIME's prior (same layers,
fusion, floor) and scales it to the coefficients' units; ``prior_precision`` λ (how strongly the prior mean
holds) and ``noise_precision`` α are estimated by evidence maximisation unless given.
"""

from __future__ import annotations

from cam_ext import cam_prior
from cnnxai.explainers.cams import CAM_OPTIONS, cam_settings, shared_cams
from cnnxai.explainers.lime_family import (
    LIME_OPTIONS,
    fitted,
    shared_segments,
    superpixel_extras,
)
from cnnxai.explainers.registry import Attribution, ExplainContext, register
from cnnxai.options import Option
from lime_ext import Explanation, LimeSettings, Neighbourhood

BAYLIME_PRIORS = ("none", "gradcam")
ESTIMATED = "auto"


def parse_precision(text: str) -> float | str:
    """'auto' (estimated by evidence maximisation) or a positive number."""
    return ESTIMATED if text.strip().lower() == ESTIMATED else float(text)


def precision_check(value) -> str | None:
    if value == ESTIMATED or (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
        return None
    return "must be 'auto' or a positive number"


BAYLIME_OPTIONS = (
    *LIME_OPTIONS,
    Option("prior", "none", "none: BayLIME's non-informative prior (mean 0); gradcam: the per-superpixel Grad-CAM "
           "mean, scaled to the coefficients' units, as prior mean", choices=BAYLIME_PRIORS),
    Option("prior_precision", ESTIMATED, "lambda, the precision of the prior (auto: evidence maximisation; BayLIME's "
           "Grad-CAM experiment fixed 1000)", parse=parse_precision, check=precision_check),
    Option("noise_precision", ESTIMATED, "alpha, the precision of the noise per unit kernel weight (auto: evidence "
           "maximisation)", parse=parse_precision, check=precision_check),
    *CAM_OPTIONS,
)  # fmt: skip


def _given(value) -> float | None:
    return None if value == ESTIMATED else float(value)


@register("baylime", "BayLIME: Bayesian ridge on LIME's samples; prior none (non-informative) or gradcam "
          "(Grad-CAM prior mean)", BAYLIME_OPTIONS, random=True, neighbourhood=True)  # fmt: skip
def baylime(context: ExplainContext) -> Attribution:
    settings = context.settings(LimeSettings)
    label = context.target
    prior = None
    if context.option("prior") == "gradcam":
        cam = cam_settings(context, "gradcam")
        segments = shared_segments(context, settings)
        prior = cam_prior(shared_cams(context, cam, [label]), segments, cam.fusion)
    precisions = _given(context.option("prior_precision")), _given(context.option("noise_precision"))

    def fit(neighbourhood: Neighbourhood) -> Explanation:
        return neighbourhood.fit_bayesian([label], prior, *precisions)

    _, explanation = fitted(context, settings, fit)
    return Attribution(
        explanation.attribution_map(label),
        {"explanation": explanation, "prior": prior, **superpixel_extras(explanation, label)},
    )
