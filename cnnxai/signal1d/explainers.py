"""The 1-D explainers of MNIST-1D signals, each registered with the options it declares (see
:mod:`cnnxai.signal1d.registry`): window LIME, GradLIME-1D, 1-D Grad-CAM, Integrated Gradients, Input x Gradient,
Saliency and RISE-1D.

The LIME family: segments are contiguous windows of ``window`` samples; a hidden window shows 0 (the data set's
mean: MNIST-1D is standardised) or the window's own mean. LIME and GradLIME use this library's
:class:`lime_ext.Neighbourhood`, so kernel, distance and ridge are exactly those of the image explainers, and
they share one neighbourhood per signal when a ``shared`` dict is passed.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients

from cam_ext import resolve_layer, segment_prior
from cnnxai.options import Option, at_least, positive, probability
from cnnxai.signal1d.model import CAM_LAYERS, DEFAULT_CAM_LAYER
from cnnxai.signal1d.registry import Signal1DContext, register_1d
from lime_ext import LimeSettings, Neighbourhood, explanation_rng, sample_binary_masks

HIDE_MODES = ("zero", "mean")

# ---------------------------------------------------------------------------------------------------------------
# LIME family


@dataclass(frozen=True)
class WindowLimeSettings:
    """The LIME neighbourhood of a signal: ``num_samples`` perturbed signals, segments of ``window`` samples,
    what a hidden window shows (``hide``, one of :data:`HIDE_MODES`) and the kernel's width on the cosine
    distance (the size and kernel of the image explainers' neighbourhood). Also the key under which LIME and
    GradLIME share one neighbourhood."""

    num_samples: int = LimeSettings.num_samples
    # 40 samples -> 10 windows: about one stroke of mnist1d's templates each (a template spans ~7-12 samples)
    window: int = 4
    hide: str = "zero"
    kernel_width: float = LimeSettings.kernel_width


LIME_OPTIONS = (
    Option("num_samples", WindowLimeSettings.num_samples, "perturbed signals of the neighbourhood",
           check=at_least(2), alias="num_samples"),
    Option("window", WindowLimeSettings.window, "segment length in samples (the last window is shorter when it "
           "does not divide the signal length)", check=at_least(1), alias="window"),
    Option("hide", WindowLimeSettings.hide, "what a hidden window shows: zero (the data set's mean; the data are "
           "standardised) or mean (the window's own mean)", choices=HIDE_MODES, alias="hide"),
    Option("kernel_width", WindowLimeSettings.kernel_width, "width of LIME's kernel on the cosine distance",
           check=positive),
)  # fmt: skip
LAYER_OPTION = Option(
    "layer", DEFAULT_CAM_LAYER, "Grad-CAM layer: reluN = conv block N after its ReLU (Keras' Conv1D output), "
    "convN before it", choices=CAM_LAYERS, alias="cam_layer",
)  # fmt: skip


def window_segments(length: int, window: int) -> np.ndarray:
    """Contiguous windows: int64 (L,) ids 0..ceil(L/window)-1 (the last window is shorter if window does not
    divide L)."""
    if not 1 <= int(window) <= int(length):
        raise ValueError(f"window must be between 1 and the signal length {length}, got {window}")
    return np.arange(int(length), dtype=np.int64) // int(window)


def hidden_signal(signal: np.ndarray, segments: np.ndarray, hide: str | float) -> np.ndarray:
    """What a switched-off window shows, float32 (L,): 'zero' (the data set's mean), 'mean' (each window's own
    mean) or a number."""
    if isinstance(hide, str):
        if hide == "zero":
            return np.zeros_like(signal, dtype=np.float32)
        if hide == "mean":
            counts = np.bincount(segments)
            means = np.bincount(segments, weights=signal.astype(np.float64)) / np.maximum(counts, 1)
            return means[segments].astype(np.float32)
        raise ValueError(f"hide must be one of {', '.join(HIDE_MODES)} or a number, got {hide!r}")
    return np.full_like(signal, float(hide), dtype=np.float32)


def neighbourhood_1d(context: Signal1DContext) -> Neighbourhood:
    """The signal's LIME neighbourhood: Z (N,M) from the seed and the signal's bytes, the softmax of every
    perturbed signal. Cached in ``context.shared``, so LIME and GradLIME fit the same samples."""
    settings = context.settings(WindowLimeSettings)
    key = ("neighbourhood_1d", context.seed, settings, zlib.crc32(context.signal.tobytes()))
    if key not in context.shared:
        segments = window_segments(context.length, settings.window)
        hidden = hidden_signal(context.signal, segments, settings.hide)
        masks = sample_binary_masks(
            settings.num_samples, int(segments.max()) + 1, explanation_rng(context.seed, context.signal)
        )
        keep = torch.from_numpy(masks[:, segments].astype(np.float32)).to(context.device)  # (N,L)
        base = torch.from_numpy(hidden).to(context.device)
        difference = context.x - base
        predictions = context.probabilities(
            settings.num_samples, lambda start, stop: base + keep[start:stop] * difference
        )
        info = {
            "seed": context.seed,
            "num_samples": settings.num_samples,
            "window": settings.window,
            "hide": settings.hide,
        }
        context.shared[key] = Neighbourhood(
            context.signal, segments, masks, predictions.cpu().numpy(), settings.kernel_width, info
        )
    return context.shared[key]


@register_1d(
    "lime",
    "LIME on windows of the signal (hidden windows show 0, the data set's mean), lime's kernel and ridge",
    LIME_OPTIONS,
    random=True,
)
def lime_1d(context: Signal1DContext) -> np.ndarray:
    explanation = neighbourhood_1d(context).fit(labels=[context.target], cam_mode="none")
    return explanation.attribution_map(context.target)


@register_1d(
    "gradlime",
    "GradLIME: LIME's neighbourhood fitted on Z diag(a), a = per-window 1-D Grad-CAM prior; attribution b = a*w",
    (*LIME_OPTIONS, LAYER_OPTION),
    random=True,
)
def gradlime_1d(context: Signal1DContext) -> np.ndarray:
    neighbourhood = neighbourhood_1d(context)
    prior = window_prior(gradcam_map(context), neighbourhood.segments)
    explanation = neighbourhood.fit(labels=[context.target], prior=prior, cam_mode="feature")
    return explanation.attribution_map(context.target)


def window_prior(cam: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """The per-window prior a (M,) of a 1-D CAM (l,): linearly upsampled to L, min-max normalised, averaged per
    window, divided by its max (a/max(a), not a min-max of a, which would zero one window for good). The image
    prior (:func:`cam_ext.segment_prior`) on one row: bilinear on a (1,l) map is linear along it."""
    return segment_prior(np.asarray(cam, dtype=np.float32)[None], np.asarray(segments)[None])


# ---------------------------------------------------------------------------------------------------------------
# Gradients


def gradcam_map(context: Signal1DContext) -> np.ndarray:
    """1-D Grad-CAM of the target logit at ``layer`` (L,) >= 0: alpha_k = mean_t dY_c/dA_k(t),
    map = ReLU(sum_k alpha_k A_k), linearly upsampled to L (the identity for this model: no pooling)."""
    _, layer = resolve_layer(context.model, str(context.option("layer")))
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, output: captured.append(output))
    try:
        with torch.enable_grad():
            logits = context.model(context.x)
    finally:
        handle.remove()
    if len(captured) != 1 or captured[0].ndim != 3:
        raise ValueError(
            f"layer {context.option('layer')!r} must run once and give (1,K,l) feature maps, "
            f"got {[tuple(c.shape) for c in captured]}"
        )
    activations = captured[0]
    (gradients,) = torch.autograd.grad(logits[0, context.target], activations)
    alpha = gradients.mean(dim=2, keepdim=True)  # (1,K,1)
    cam = F.relu((alpha * activations).sum(dim=1, keepdim=True))  # (1,1,l)
    if cam.shape[-1] != context.length:
        cam = F.interpolate(cam, size=context.length, mode="linear", align_corners=False)
    return cam[0, 0].detach().cpu().numpy().astype(np.float32)


@register_1d(
    "gradcam",
    "1-D Grad-CAM of the logit: ReLU(sum_k mean_t(dY/dA_k) A_k) at the layer, linear to L",
    (LAYER_OPTION,),
    signed=False,
)
def gradcam_1d(context: Signal1DContext) -> np.ndarray:
    return gradcam_map(context)


def _input_gradient(context: Signal1DContext) -> torch.Tensor:
    x = context.x.requires_grad_(True)
    with torch.enable_grad():
        logit = context.model(x)[0, context.target]
        (gradient,) = torch.autograd.grad(logit, x)
    return gradient[0]


@register_1d(
    "ig",
    "Integrated Gradients (captum) of the logit, zero baseline (= the data set's mean), Gauss-Legendre steps",
    (Option("steps", 50, "steps of the path integral", check=at_least(2), alias="ig_steps"),),
)
def integrated_gradients_1d(context: Signal1DContext) -> np.ndarray:
    x = context.x.requires_grad_(True)
    with torch.enable_grad():
        attributions = IntegratedGradients(context.model).attribute(
            x,
            baselines=torch.zeros_like(x),
            target=context.target,
            n_steps=int(context.option("steps")),
            internal_batch_size=context.batch_size,
        )
    return attributions[0].detach().cpu().numpy()


@register_1d(
    "input_x_gradient", "Input x Gradient of the logit (signed; IG with one step, up to its baseline)"
)
def input_x_gradient_1d(context: Signal1DContext) -> np.ndarray:
    return (context.x[0] * _input_gradient(context)).detach().cpu().numpy()


@register_1d("saliency", "Saliency: |d logit / d signal| (Simonyan et al.)", signed=False)
def saliency_1d(context: Signal1DContext) -> np.ndarray:
    return _input_gradient(context).abs().detach().cpu().numpy()


# ---------------------------------------------------------------------------------------------------------------
# RISE


def rise_masks_1d(num_masks: int, length: int, cells: int, p1: float, rng: np.random.Generator) -> np.ndarray:
    """RISE's masks on a signal, float32 (N,L) in [0,1]: binary grids (N,s) ~ Bernoulli(p1), linearly
    upsampled to (s+1)*cell samples (cell = ceil(L/s)), then cropped to L at a random shift in [0,cell).
    Every draw comes from ``rng``."""
    if not 1 <= cells <= length:
        raise ValueError(f"rise cells must be between 1 and the signal length {length}, got {cells}")
    if not 0 < p1 <= 1:
        raise ValueError(f"rise p1 must be in (0, 1], got {p1}")
    grids = (rng.random((num_masks, cells)) < p1).astype(np.float32)
    shifts = rng.integers(0, math.ceil(length / cells), num_masks)
    cell = math.ceil(length / cells)
    # The masks are drawn on the host (numpy in, numpy out); the explainer moves them to the device once.
    up = F.interpolate(  # device-ok: host masks
        torch.from_numpy(grids)[:, None], size=(cells + 1) * cell, mode="linear", align_corners=False
    )
    index = torch.from_numpy(shifts)[:, None] + torch.arange(length)[None]  # device-ok: (N,L) crops, host
    return torch.gather(up[:, 0], 1, index).cpu().numpy()


# p1 = 0.5 as the RISE of xai_utils in Siddhantmest/XAI-Methods-for-CNN (the RISE paper's ImageNet notebooks
# use 0.1): with 8 cells, p = 0.1 leaves no cell on in ~40% of the masks. Measured on 60 test signals at 2000
# masks: maps of two seeds correlate 0.989 at 0.5 against 0.981 at 0.1, with the same deletion AUC (0.099
# against 0.093; random order 0.41). 0.5 is also the density of LIME's neighbourhood, so RISE and LIME are
# compared on alike perturbations.
RISE_OPTIONS = (
    Option("masks", 2000, "random masks N", check=at_least(1), alias="rise_masks"),
    Option("cells", 8, "grid cells along the signal before upsampling", check=at_least(1)),
    Option("p1", 0.5, "probability that a cell is kept", check=probability, alias="rise_p1"),
)


@register_1d(
    "rise",
    "RISE-1D: random cell masks, linear upsampling + random shift; sum P(c|x*M) M / (N p); seeded",
    RISE_OPTIONS,
    random=True,
    signed=False,
)
def rise_1d(context: Signal1DContext) -> np.ndarray:
    """RISE-1D of the target's probability (the RISE paper's estimator on a signal)."""
    num_masks, cells, p1 = context.option("masks"), context.option("cells"), context.option("p1")
    rng = np.random.default_rng(
        np.random.SeedSequence([context.seed, 7, zlib.crc32(context.signal.tobytes())])
    )
    masks = torch.from_numpy(rise_masks_1d(num_masks, context.length, cells, p1, rng)).to(context.device)
    x = context.x
    # The mask multiplies the standardised signal: a masked sample becomes the data set's mean (RISE's choice).
    probabilities = context.probabilities(num_masks, lambda start, stop: x * masks[start:stop])
    saliency = (probabilities[:, context.target, None] * masks).sum(dim=0) / (num_masks * p1)
    return saliency.cpu().numpy()
