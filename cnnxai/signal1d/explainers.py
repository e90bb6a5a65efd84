"""Explainers of 1-D signals (MNIST-1D): one vocabulary, ``explain_1d(name, model, signal, target, seed)``.

Every method returns a float32 map of the signal's length L, signed where the method is (``METHODS_1D[name]
.signed``). The model maps (B,L) float signals to (B,C) logits; methods that need probabilities apply the
softmax themselves. Each call runs the model in eval mode and restores every module's own flag afterwards,
leaves no hook behind, and batches its perturbed signals (one forward per chunk of ``batch_size``).

The LIME family (algorithms.md 4, "1-D variant"): segments are contiguous windows of ``window`` samples; a
hidden window shows 0 (the data set's mean: MNIST-1D is standardised) or the window's own mean. LIME and
GradLIME use this library's :class:`lime_ext.Neighbourhood`, so kernel, distance and ridge are exactly those
of the image explainers, and they share one neighbourhood per signal when a ``shared`` dict is passed.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients
from torch import nn

from cam_ext import evaluation_mode, resolve_layer
from lime_ext import Neighbourhood, explanation_rng, sample_binary_masks, segment_prior

DEFAULT_OPTIONS: dict[str, Any] = {
    "window": 4,  # 40 samples -> 10 windows: about one template stroke each (a template spans ~7-12 samples)
    "hide": "zero",  # 'zero' (= the data set's mean) or 'mean' (each window's own mean)
    "num_samples": 1000,  # LIME neighbourhood (the seeds' default)
    "kernel_width": 0.25,  # lime_image's
    "layer": "relu3",  # conv block 3 after its ReLU: the seeds' Keras Conv1D(activation='relu') output
    "ig_steps": 50,
    "rise_masks": 2000,
    "rise_cells": 8,
    "rise_p1": 0.5,  # see rise_1d
    "batch_size": 1024,  # signals per forward: 1024 x 40 floats is nothing; one call beats many on a CPU
}
HIDE_MODES = ("zero", "mean")


@dataclass(frozen=True)
class Method1D:
    """A registered 1-D explainer: ``function(context) -> (L,) float32``; ``random`` when it draws from the
    seed; ``signed`` when its values can be negative (figures use a diverging colour map for those)."""

    name: str
    description: str
    function: Callable[[Signal1DContext], np.ndarray]
    random: bool
    signed: bool


METHODS_1D: dict[str, Method1D] = {}


def register_1d(name: str, description: str, random: bool = False, signed: bool = True):
    def decorate(function: Callable[[Signal1DContext], np.ndarray]):
        METHODS_1D[name] = Method1D(name, description, function, random, signed)
        return function

    return decorate


@dataclass
class Signal1DContext:
    """What a 1-D explainer sees: the model, the signal (L,) float32, the class, the seed and the options."""

    model: nn.Module
    signal: np.ndarray
    target: int
    seed: int
    options: dict[str, Any]
    shared: dict

    @property
    def device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    @property
    def length(self) -> int:
        return int(self.signal.shape[0])

    @property
    def x(self) -> torch.Tensor:
        """The signal as a (1,L) float32 tensor on the model's device."""
        return torch.from_numpy(np.ascontiguousarray(self.signal, dtype=np.float32)).to(self.device)[None]

    def option(self, name: str) -> Any:
        return self.options.get(name, DEFAULT_OPTIONS[name])

    @torch.no_grad()
    def probabilities(self, signals: torch.Tensor) -> torch.Tensor:
        """softmax(model(signals)) (B,C) float32, ``batch_size`` signals per forward."""
        size = int(self.option("batch_size"))
        return torch.cat(
            [
                F.softmax(self.model(signals[i : i + size]).float(), dim=1)
                for i in range(0, len(signals), size)
            ]
        )


def explain_1d(
    name: str,
    model: nn.Module,
    signal: np.ndarray,
    target: int,
    seed: int = 0,
    shared: dict | None = None,
    **options: Any,
) -> np.ndarray:
    """The attribution map of ``signal`` (L,) for class ``target`` by method ``name``: float32 (L,).

    ``options`` override :data:`DEFAULT_OPTIONS` (unknown names are an error). ``shared`` (a dict kept by the
    caller for one signal) lets LIME and GradLIME fit the same neighbourhood. Random methods give identical
    maps for the same seed, signal and options.
    """
    if name not in METHODS_1D:
        raise ValueError(f"unknown 1-D explainer {name!r}; choose one of {', '.join(METHODS_1D)}")
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(DEFAULT_OPTIONS)}")
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim != 1:
        raise ValueError(f"a 1-D explainer takes one signal of shape (L,), got shape {signal.shape}")
    context = Signal1DContext(
        model, signal, int(target), int(seed), dict(options), {} if shared is None else shared
    )
    with evaluation_mode(model):
        result = METHODS_1D[name].function(context)
    result = np.asarray(result, dtype=np.float32).reshape(-1)
    if result.shape != signal.shape:
        raise RuntimeError(f"{name} returned shape {result.shape} for a signal of shape {signal.shape}")
    return result


# ---------------------------------------------------------------------------------------------------------------
# LIME family


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
    window, hide = int(context.option("window")), context.option("hide")
    num_samples = int(context.option("num_samples"))
    key = (
        "neighbourhood_1d",
        context.seed,
        num_samples,
        window,
        str(hide),
        float(context.option("kernel_width")),
        zlib.crc32(context.signal.tobytes()),
    )
    if key not in context.shared:
        segments = window_segments(context.length, window)
        hidden = hidden_signal(context.signal, segments, hide)
        masks = sample_binary_masks(
            num_samples, int(segments.max()) + 1, explanation_rng(context.seed, context.signal)
        )
        device = context.device
        keep = torch.from_numpy(masks[:, segments].astype(np.float32)).to(device)  # (N,L)
        base = torch.from_numpy(hidden).to(device)
        perturbed = base + keep * (context.x - base)
        predictions = context.probabilities(perturbed).cpu().numpy()
        info = {"seed": context.seed, "num_samples": num_samples, "window": window, "hide": hide}
        context.shared[key] = Neighbourhood(
            context.signal, segments, masks, predictions, float(context.option("kernel_width")), info
        )
    return context.shared[key]


@register_1d(
    "lime",
    "LIME on windows of the signal (window 4 -> 10 segments, hidden = 0), 1000 samples, lime's kernel and ridge",
    random=True,
)
def lime_1d(context: Signal1DContext) -> np.ndarray:
    explanation = neighbourhood_1d(context).fit(labels=[context.target], cam_mode="none")
    return explanation.attribution_map(context.target)


@register_1d(
    "gradlime",
    "GradLIME: LIME's neighbourhood fitted on Z diag(a), a = per-window 1-D Grad-CAM prior; attribution b = a*w",
    random=True,
)
def gradlime_1d(context: Signal1DContext) -> np.ndarray:
    neighbourhood = neighbourhood_1d(context)
    prior = window_prior(gradcam_map(context), neighbourhood.segments)
    explanation = neighbourhood.fit(labels=[context.target], prior=prior, cam_mode="feature")
    return explanation.attribution_map(context.target)


def window_prior(cam: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """The per-window prior a (M,) of a 1-D CAM (l,) (algorithms.md 2.1): linearly upsampled to L, min-max
    normalised, averaged per window, divided by its max (a/max(a), not a min-max of a, which would zero one
    window: pitfall 11.2). The image prior on one row: bilinear on a (1,l) map is linear along it."""
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
    "1-D Grad-CAM of the logit at layer relu3 (conv block 3): ReLU(sum_k mean_t(dY/dA_k) A_k), linear to L",
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
    "Integrated Gradients (captum) of the logit, zero baseline (= the data set's mean), 50 Gauss-Legendre steps",
)
def integrated_gradients_1d(context: Signal1DContext) -> np.ndarray:
    x = context.x.requires_grad_(True)
    with torch.enable_grad():
        attributions = IntegratedGradients(context.model).attribute(
            x,
            baselines=torch.zeros_like(x),
            target=context.target,
            n_steps=int(context.option("ig_steps")),
            internal_batch_size=int(context.option("batch_size")),
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
        raise ValueError(f"rise_cells must be between 1 and the signal length {length}, got {cells}")
    if not 0 < p1 <= 1:
        raise ValueError(f"rise_p1 must be in (0, 1], got {p1}")
    grids = (rng.random((num_masks, cells)) < p1).astype(np.float32)
    shifts = rng.integers(0, math.ceil(length / cells), num_masks)
    cell = math.ceil(length / cells)
    up = F.interpolate(
        torch.from_numpy(grids)[:, None], size=(cells + 1) * cell, mode="linear", align_corners=False
    )
    index = torch.from_numpy(shifts)[:, None] + torch.arange(length)[None]  # (N,L) crop positions
    return torch.gather(up[:, 0], 1, index).numpy()


@register_1d(
    "rise",
    "RISE-1D: 2000 masks on 8 cells (p=0.5), linear upsampling + random shift; sum P(c|x*M) M / (N p); seeded",
    random=True,
    signed=False,
)
def rise_1d(context: Signal1DContext) -> np.ndarray:
    """RISE-1D of the target's probability. p1 = 0.5 by default, as the seeds' xai_utils variant (the RISE
    notebooks on ImageNet use 0.1): with 8 cells, p = 0.1 leaves no cell on in ~40% of the masks. Measured on
    60 test signals at 2000 masks: maps of two seeds correlate 0.989 at 0.5 against 0.981 at 0.1, with the
    same deletion AUC (0.099 against 0.093; random order 0.41). 0.5 is also the density of LIME's
    neighbourhood, so RISE and LIME are compared on alike perturbations."""
    num_masks, cells, p1 = (
        int(context.option("rise_masks")),
        int(context.option("rise_cells")),
        float(context.option("rise_p1")),
    )
    if num_masks < 1:
        raise ValueError(f"rise_masks must be at least 1, got {num_masks}")
    rng = np.random.default_rng(
        np.random.SeedSequence([context.seed, 7, zlib.crc32(context.signal.tobytes())])
    )
    masks = torch.from_numpy(rise_masks_1d(num_masks, context.length, cells, p1, rng)).to(context.device)
    # The mask multiplies the standardised signal: a masked sample becomes the data set's mean (RISE's choice).
    probabilities = context.probabilities(context.x * masks)[:, context.target]  # (N,)
    saliency = (probabilities[:, None] * masks).sum(dim=0) / (num_masks * p1)
    return saliency.cpu().numpy()


# ---------------------------------------------------------------------------------------------------------------
# A ground-truth-free check


@torch.no_grad()
def deletion_curve(
    model: nn.Module, signal: np.ndarray, target: int, attribution: np.ndarray, batch_size: int = 1024
) -> tuple[np.ndarray, float]:
    """RISE's deletion metric on a signal: zero (= the data set's mean) the samples one at a time in
    decreasing attribution order (ties by position) and record P(target). Returns (curve (L+1,), AUC by the
    trapezoid rule on [0,1]); lower is better (the class's evidence goes first)."""
    signal = np.asarray(signal, dtype=np.float32)
    length = signal.shape[0]
    order = np.argsort(-np.asarray(attribution, dtype=np.float64), kind="stable")
    keep = np.ones((length + 1, length), dtype=np.float32)
    for step in range(1, length + 1):
        keep[step:, order[step - 1]] = 0.0
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    signals = torch.from_numpy(keep * signal[None]).to(device)
    with evaluation_mode(model):
        curve = torch.cat(
            [
                F.softmax(model(signals[i : i + batch_size]).float(), dim=1)
                for i in range(0, len(signals), batch_size)
            ]
        )[:, target]
    curve = curve.cpu().numpy().astype(np.float64)
    auc = (curve.sum() - curve[0] / 2 - curve[-1] / 2) / length
    return curve, float(auc)
