"""LIME, GradLIME and CamLIME: one perturbation set per image, shared by all three when they are compared."""

from __future__ import annotations

import numpy as np

from cam_ext import compute_cams
from cnnxai.explainers.cams import layers_of
from cnnxai.explainers.registry import Attribution, ExplainContext, register
from cnnxai.pipeline import cam_prior
from lime_ext import CamLimeExplainer, Neighbourhood


def shared_segments(context: ExplainContext) -> np.ndarray:
    """The image's superpixels for this seed and segmenter, computed once per image."""
    segmenter = context.option("segmenter", "quickshift")
    key = ("segments", context.seed, segmenter)
    if key not in context.shared:
        explainer = CamLimeExplainer(context.classifier, segmenter=segmenter)
        context.shared[key] = explainer.segment(context.image, context.seed)
    return context.shared[key]


def shared_neighbourhood(context: ExplainContext) -> Neighbourhood:
    """One LIME neighbourhood per (image, seed, sampling settings): LIME and every prior fit the same samples."""
    num_samples = int(context.option("num_samples", 1000))
    hide_color = context.option("hide_color", 0)
    key = (
        "neighbourhood",
        context.seed,
        num_samples,
        context.option("segmenter", "quickshift"),
        str(hide_color),
    )
    if key not in context.shared:
        explainer = CamLimeExplainer(context.classifier, hide_color=hide_color, batch_size=context.batch_size)
        context.shared[key] = explainer.sample(
            context.image, num_samples, context.seed, segments=shared_segments(context)
        )
    return context.shared[key]


@register(
    "lime",
    "LIME (lime_image's kernel, ridge and quickshift defaults), superpixel weights painted",
    random=True,
)
def lime(context: ExplainContext) -> Attribution:
    neighbourhood = shared_neighbourhood(context)
    explanation = neighbourhood.fit(labels=[context.target], cam_mode="none")
    return Attribution(explanation.attribution_map(context.target), {"explanation": explanation})


def _cam_lime(context: ExplainContext, method: str) -> Attribution:
    neighbourhood = shared_neighbourhood(context)
    cams = compute_cams(
        context.model, context.input_tensor, layers_of(context), method=method, targets=context.target
    )
    prior = cam_prior(cams, neighbourhood.segments, context.option("fusion", "mean"))
    explanation = neighbourhood.fit(
        labels=[context.target], prior=prior, cam_mode=context.option("cam_mode", "feature")
    )
    return Attribution(
        explanation.attribution_map(context.target), {"explanation": explanation, "prior": prior}
    )


@register("gradlime", "GradLIME: LIME with Grad-CAM priors (one or several layers), b = a * w", random=True)
def gradlime(context: ExplainContext) -> Attribution:
    return _cam_lime(context, "gradcam")


@register(
    "camlime",
    "CamLIME: LIME with the priors of any CAM method (option cam_method, default gradcam)",
    random=True,
)
def camlime(context: ExplainContext) -> Attribution:
    return _cam_lime(context, context.option("cam_method", "gradcam"))
