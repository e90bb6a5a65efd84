"""LIME, GradLIME and CamLIME: one perturbation set per image, and the one composition of GradLIME / CamLIME.

:func:`cam_lime` is the method (CAMs of the target layers -> per-superpixel prior -> ridge fit on the image's
shared neighbourhood, with plain LIME fitted on the same samples beside it). The registry's ``gradlime`` and
``camlime``, the command lines (:func:`explain_image`), ``--compare``, the benchmarks and the figures all call it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from cam_ext import CAM_METHODS, CamSettings, cam_prior, legacy_maps
from cnnxai.errors import UserInputError
from cnnxai.explainers.cam_lime_result import CamLimeResult
from cnnxai.explainers.cams import CAM_OPTIONS, cam_settings, shared_cams
from cnnxai.explainers.registry import (
    Attribution,
    ExplainContext,
    as_user_errors,
    class_index,
    make_context,
    register,
)
from cnnxai.options import Option, at_least, parse_colour, positive
from cnnxai.session import ImageSession
from lime_ext import (
    AUTO,
    CAM_MODES,
    DEFAULT_CAM_MODE,
    PROXIES,
    SAMPLINGS,
    SEGMENTERS,
    CamLimeExplainer,
    Explanation,
    LimeSettings,
    Neighbourhood,
    NeighbourhoodSampler,
    fit_samples,
)


def parse_samples(text: str) -> int | str:
    """'auto' or an integer: a number of samples, or 'let the stopping test choose'."""
    return AUTO if text.strip().lower() == AUTO else int(text)


def samples_check(value) -> str | None:
    if value == AUTO or (isinstance(value, int) and not isinstance(value, bool) and value >= 2):
        return None
    return "must be 'auto' or an integer of at least 2"


def floor_check(value: float) -> str | None:
    return None if 0 <= value < 1 else "must be in [0, 1)"


LIME_OPTIONS = (
    Option("num_samples", LimeSettings.num_samples, "perturbed images of the neighbourhood (the papers use 1000 "
           "to 8000), or auto: draw in rounds until the top-k superpixels are settled",
           parse=parse_samples, check=samples_check, alias="num_samples"),
    Option("max_samples", LimeSettings.max_samples, "with num_samples auto: the most samples drawn",
           check=at_least(2), alias="max_samples"),
    Option("top_k", LimeSettings.top_k, "with num_samples auto: the superpixels whose ranking must be settled",
           check=at_least(1), alias="top_k"),
    Option("segmenter", LimeSettings.segmenter, "superpixels (quickshift: the papers' setting)", choices=SEGMENTERS,
           alias="segmenter"),
    Option("hide_color", LimeSettings.hide_color, "colour of hidden superpixels: 0 (black), a grey level, R,G,B, or "
           "mean (per-superpixel mean)", parse=parse_colour, alias="hide_color"),
    Option("kernel_width", LimeSettings.kernel_width, "width of LIME's kernel on the cosine distance",
           check=positive),
    Option("sampling", LimeSettings.sampling, "masks: iid (lime's) or paired (z and 1-z, antithetic)",
           choices=SAMPLINGS, alias="sampling"),
    Option("proxy", LimeSettings.proxy, "predict the samples in reduced precision (bf16, fp16) and correct the fit "
           "with exact_samples fp32 forwards (unbiased for the fp32 model); auto: only where it runs faster here",
           choices=PROXIES, alias="proxy"),
    Option("exact_samples", LimeSettings.exact_samples, "with a proxy: the first samples also predicted in fp32",
           check=at_least(2), alias="exact_samples"),
)  # fmt: skip
CAM_MODE_OPTION = Option(
    "cam_mode", DEFAULT_CAM_MODE, "feature: ridge on Z*a (the paper); importance: LIME re-weighted by a; none: "
    "plain LIME; legacy: the public code's (N,M) resize", choices=CAM_MODES, alias="cam_mode",
)  # fmt: skip
PRIOR_OPTIONS = (
    Option("prior_strength", CamSettings.prior_strength, "lambda, the ridge penalty of the fit with the prior: "
           "a superpixel j is penalised by lambda / a_j^2 (1: the paper's)", check=positive, alias="prior_strength"),
    Option("prior_floor", CamSettings.prior_floor, "epsilon: a_j <- max(a_j, epsilon) before normalising, so a "
           "superpixel the CAM ignores can still be chosen (0: the paper's)", check=floor_check,
           alias="prior_floor"),
)  # fmt: skip
GRADLIME_OPTIONS = (*LIME_OPTIONS, *CAM_OPTIONS, *PRIOR_OPTIONS, CAM_MODE_OPTION)
CAMLIME_OPTIONS = (
    *GRADLIME_OPTIONS,
    Option("method", CamSettings.method, "the CAM method of the prior", choices=tuple(CAM_METHODS)),
)
VARIANTS = {"gradlime": "GradLIME", "camlime": "CamLIME"}


def shared_segments(context: ExplainContext, settings: LimeSettings) -> np.ndarray:
    """The image's superpixels for this seed and segmenter (or the session's fixed ones), computed once."""
    session = context.session
    if session.fixed_segments is not None:
        return session.fixed_segments
    key = (context.seed, settings.segmenter)
    if key not in session.segments:
        explainer = CamLimeExplainer(context.classifier, settings)
        session.segments[key] = explainer.segment(context.image, context.seed)
    return session.segments[key]


def shared_sampler(context: ExplainContext, settings: LimeSettings) -> NeighbourhoodSampler:
    """One lazily drawn neighbourhood per (image, seed, segmentation, hide colour): LIME and every prior fit the
    same samples, and a smaller sample count is the first rows of a larger one, so they share forwards too. The
    sampler keeps the classifier and batch size of the call that made it."""
    segments = shared_segments(context, settings)
    key = (context.seed, settings.segmenter, settings.hide_color, id(segments))
    samplers = context.session.samplers
    if key not in samplers:
        explainer = CamLimeExplainer(context.classifier, settings, context.batch_size)
        samplers[key] = explainer.sampler(context.image, context.seed, segments)
    return samplers[key]


def shared_neighbourhood(
    context: ExplainContext, settings: LimeSettings, progress: bool = False
) -> Neighbourhood:
    """The shared neighbourhood of ``settings.num_samples`` samples (a number: see :func:`fitted` for 'auto')."""
    if settings.adaptive:
        raise UserInputError(
            "num_samples=auto is taken by lime, gradlime, camlime, baylime and kernel_shap; give this explainer a number"
        )
    return shared_sampler(context, settings).neighbourhood(
        settings.num_samples, settings.kernel_width, progress
    )


def fitted(
    context: ExplainContext,
    settings: LimeSettings,
    fit: Callable[[Neighbourhood], Explanation],
    cam_mode: str = "none",
    ridge_alpha: float = 1.0,
    progress: bool = False,
) -> tuple[Neighbourhood, Explanation]:
    """``fit`` on the shared samples: ``settings.num_samples`` of them, or as many as the stopping test of
    ``num_samples='auto'`` needs (:func:`lime_ext.fit_samples`)."""
    if settings.adaptive and cam_mode == "legacy":
        raise UserInputError("num_samples=auto cannot test cam_mode legacy (no per-superpixel attributions); "
                             "give a number of samples")  # fmt: skip
    sampler = shared_sampler(context, settings)
    return fit_samples(sampler, settings, fit, cam_mode, ridge_alpha, progress)


def forwards(samples: dict) -> int:
    """The model's forwards an explanation cost, every precision counted, from its ``info['samples']``."""
    return int(sum(samples["forwards"].values())) if "forwards" in samples else int(samples["samples"])


def superpixel_extras(explanation: Explanation, label: int) -> dict[str, Any]:
    """What every superpixel explainer returns beside its map: the attributions (M,), the samples (model
    forwards on perturbed images) the fit used, its weighted R^2 and the superpixels (H,W)."""
    explained = explanation.labels[label]
    return {
        "superpixel_attributions": explained.attributions.astype(np.float64),
        "forwards": forwards(explanation.info["samples"]),
        "score": float(explained.score),
        "segments": explanation.segments,
        "samples": explanation.info["samples"],
    }


def cam_lime(
    context: ExplainContext,
    targets: Sequence[int],
    lime: LimeSettings,
    cam: CamSettings,
    cam_mode: str = DEFAULT_CAM_MODE,
    progress: bool = False,
) -> CamLimeResult:
    """GradLIME / CamLIME of the context's image for each class of ``targets`` (the first is the main one).

    Each class gets its own class-specific prior from the CAMs of ``cam`` (all classes from one batched CAM
    pass); the explanation and plain LIME are fitted on the same shared neighbourhood of ``lime``, so their
    difference comes from the prior alone. Timings count only the work done in this call (shared work done
    earlier costs nothing here).
    """
    if cam_mode not in CAM_MODES:
        raise UserInputError(f"unknown cam_mode {cam_mode!r}; choose one of {', '.join(CAM_MODES)}")
    labels = [int(t) for t in targets]
    timings: dict[str, float] = {}
    start = time.perf_counter()
    segments = shared_segments(context, lime)
    timings["segmentation_s"] = time.perf_counter() - start
    if segments.max() < 1:
        raise UserInputError(
            f"segmentation ({lime.segmenter}) found a single superpixel: nothing to explain; try --segmenter slic"
        )
    start = time.perf_counter()
    probabilities = context.session.probabilities
    cams = shared_cams(context, cam, labels)
    priors = {
        label: cam_prior(cams, segments, cam.fusion, i, cam.prior_floor) for i, label in enumerate(labels)
    }
    fused = cams.fused(cam.pixel_rule).cpu().numpy()
    cam_maps = {label: fused[i] for i, label in enumerate(labels)}
    timings["cam_s"] = time.perf_counter() - start
    start = time.perf_counter()
    legacy = dict(zip(labels, legacy_maps(cams), strict=True)) if cam_mode == "legacy" else None

    def fit(neighbourhood: Neighbourhood) -> Explanation:
        return neighbourhood.fit(
            labels=labels, prior=priors, cam_mode=cam_mode, cam_map=legacy, ridge_alpha=cam.prior_strength
        )

    neighbourhood, ours = fitted(context, lime, fit, cam_mode, cam.prior_strength, progress)
    timings["predict_s"] = time.perf_counter() - start  # the samples' forwards, and the fits of 'auto' rounds
    start = time.perf_counter()
    plain = neighbourhood.fit(labels=labels, cam_mode="none")
    plain.info["samples"] = ours.info["samples"]
    timings["fit_s"] = time.perf_counter() - start
    return CamLimeResult(
        labels,
        ours,
        plain,
        cams,
        priors,
        cam_maps,
        probabilities,
        neighbourhood,
        timings,
        lime,
        cam,
        cam_mode,
    )


def _composition(context: ExplainContext, name: str, targets: Sequence[int], progress: bool = False):
    method = context.option("method") if name == "camlime" else "gradcam"
    return cam_lime(
        context, targets, context.settings(LimeSettings), cam_settings(context, method),
        context.option("cam_mode"), progress,
    )  # fmt: skip


def explain_image(
    name: str,
    model: nn.Module,
    image: np.ndarray,
    target: int | None = None,
    top_labels: int = 1,
    seed: int = 0,
    device: torch.device | None = None,
    batch_size: int | None = None,
    session: ImageSession | None = None,
    amp: bool = False,
    progress: bool = False,
    tf32: bool = False,
    shared: dict | None = None,
    **options: Any,
) -> CamLimeResult:
    """GradLIME (``name='gradlime'``) or CamLIME (``'camlime'``) of one image (RGB uint8 (H,W,3), model-input
    frame), with plain LIME on the same samples: what ``GradLIME.py`` / ``CamLIME.py`` run per image.

    The explained classes are ``[target]`` or, without a target, the ``top_labels`` best predicted ones, each with
    its own CAM prior. ``options`` are the explainer's declared options; ``session`` (an
    :class:`~cnnxai.session.ImageSession` of ``model`` and ``image``) lets a caller reuse this image's prediction,
    neighbourhood and CAMs for other explainers (``--compare``; ``shared``: its earlier form, see
    :func:`~cnnxai.explainers.registry.make_context`); ``amp`` runs the perturbation forwards in
    float16 autocast on CUDA; ``tf32`` allows TF32 on CUDA (off: full float32, as in every tool).
    """
    if name not in VARIANTS:
        raise ValueError(f"explain_image explains with {' or '.join(VARIANTS)}, not {name!r}")
    target = None if target is None else class_index(target)
    context = make_context(
        name, model, image, target or 0, seed, device, batch_size, session, amp, tf32, shared=shared, **options
    )
    with context.precision(), as_user_errors():
        probabilities = context.session.probabilities
        if target is not None:
            if not 0 <= int(target) < len(probabilities):
                raise UserInputError(
                    f"target class {target} is out of range: the model has {len(probabilities)} classes "
                    f"(0..{len(probabilities) - 1})"
                )
            labels = [int(target)]
        else:
            labels = [int(c) for c in np.argsort(probabilities)[::-1][: max(1, int(top_labels))]]
        return _composition(context, name, labels, progress)


def _as_attribution(result: CamLimeResult) -> Attribution:
    return Attribution(
        result.ours.attribution_map(result.target),
        {"explanation": result.ours, "prior": result.prior, "result": result,
         **superpixel_extras(result.ours, result.target)},
    )  # fmt: skip


@register("lime", "LIME (lime_image's kernel, ridge and quickshift defaults), superpixel weights painted",
          LIME_OPTIONS, random=True, neighbourhood=True)  # fmt: skip
def lime(context: ExplainContext) -> Attribution:
    def fit(neighbourhood: Neighbourhood) -> Explanation:
        return neighbourhood.fit(labels=[context.target], cam_mode="none")

    _, explanation = fitted(context, context.settings(LimeSettings), fit)
    return Attribution(
        explanation.attribution_map(context.target),
        {"explanation": explanation, **superpixel_extras(explanation, context.target)},
    )


@register("gradlime", "GradLIME: LIME with Grad-CAM priors (one or several layers), b = a * w", GRADLIME_OPTIONS,
          random=True, neighbourhood=True)  # fmt: skip
def gradlime(context: ExplainContext) -> Attribution:
    return _as_attribution(_composition(context, "gradlime", [context.target]))


@register("camlime", "CamLIME: LIME with the priors of any CAM method (option method, default gradcam)",
          CAMLIME_OPTIONS, random=True, neighbourhood=True)  # fmt: skip
def camlime(context: ExplainContext) -> Attribution:
    return _as_attribution(_composition(context, "camlime", [context.target]))
