"""Captum's gradient and occlusion methods, on the normalised input, summed over colour channels."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from captum.attr import (
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    Occlusion,
    Saliency,
)

from cnnxai.explainers.registry import Attribution, ExplainContext, channel_sum, register
from cnnxai.options import Option, at_least
from lime_ext import evaluation_mode, seeded_torch

IG_OPTIONS = (Option("steps", 50, "integration steps (Gauss-Legendre)", check=at_least(2), alias="ig_steps"),)


def _target_and_input(context: ExplainContext) -> tuple[torch.Tensor, int]:
    return context.input_tensor.requires_grad_(True), context.target


def _plain(method_cls, **kwargs):
    """An explainer that is one captum ``attribute`` call on the input (no baselines, no randomness)."""

    def run(context: ExplainContext) -> Attribution:
        x, target = _target_and_input(context)
        with evaluation_mode(context.model):
            return channel_sum(method_cls(context.model).attribute(x, target=target, **kwargs))

    return run


register("saliency", "Saliency: |d logit / d input| (captum Saliency, abs=True), summed over channels")(
    _plain(Saliency, abs=True)
)
register("gradient", "Gradient: signed d logit / d input (captum Saliency, abs=False), summed over channels")(
    _plain(Saliency, abs=False)
)
register("input_x_gradient", "Input x Gradient (captum), summed over channels")(_plain(InputXGradient))


@register(
    "ig",
    "Integrated Gradients (captum): zero baseline (the mean colour), 50 steps, Gauss-Legendre, internal batching",
    IG_OPTIONS,
)
def integrated_gradients(context: ExplainContext) -> Attribution:
    x, target = _target_and_input(context)
    steps = context.option("steps")
    with evaluation_mode(context.model):
        attributions, delta = IntegratedGradients(context.model).attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=steps,
            internal_batch_size=context.gradient_batch, return_convergence_delta=True,
        )  # fmt: skip
    result = channel_sum(attributions)
    result.extras["convergence_delta"] = float(delta.abs().max())
    return result


@contextmanager
def _seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """captum draws from torch's global generators (on the inputs' device) and numpy's: seed them for the call,
    restore the caller's after."""
    numpy_state = np.random.get_state()
    with seeded_torch(seed, device):
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


@register(
    "gradient_shap",
    "GradientSHAP (captum): baselines {zeros, x}, 50 samples, noise std 0.0001; seeded",
    (
        Option("samples", 50, "random points between a baseline and the input", check=at_least(1)),
        Option("stdev", 1e-4, "standard deviation of the noise added to each point", check=at_least(0.0)),
    ),
    random=True,
)
def gradient_shap(context: ExplainContext) -> Attribution:
    x, target = _target_and_input(context)
    baselines = torch.cat([torch.zeros_like(x), x.detach()])
    with evaluation_mode(context.model), _seeded_global_rng(context.seed, context.device):
        attributions = GradientShap(context.model).attribute(
            x, baselines=baselines, target=target, n_samples=context.option("samples"),
            stdevs=context.option("stdev"),
        )  # fmt: skip
    return channel_sum(attributions)


@register(
    "occlusion",
    "Occlusion (captum): 15x15 windows of all channels, stride 8, replaced by 0 (the mean colour)",
    (
        Option("window", 15, "side of the occluding square in pixels", check=at_least(1)),
        Option("stride", 8, "step between windows in pixels", check=at_least(1)),
    ),
)
def occlusion(context: ExplainContext) -> Attribution:
    x = context.input_tensor
    window, stride = context.option("window"), context.option("stride")
    # Forward-only: the classifier's backend runs the occluded copies (the model's own output, as before).
    with context.classifier.session(), torch.no_grad():
        attributions = Occlusion(context.classifier.forward_raw).attribute(
            x, target=context.target, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
            baselines=0, perturbations_per_eval=context.forward_batch,
        )  # fmt: skip
    return channel_sum(attributions)


@register(
    "lrp",
    "LRP (zennit EpsilonPlusFlat): flat rule on the first layer, z+ on convolutions, epsilon on dense layers; "
    "batch norm merged into the preceding convolution; activations pass relevance",
)
def lrp(context: ExplainContext) -> Attribution:
    from zennit.attribution import Gradient
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import EpsilonPlusFlat

    x = context.input_tensor
    with evaluation_mode(context.model):
        logits = context.model(x).detach()
        start = torch.zeros_like(
            logits
        )  # LRP starts from the target's logit, so relevance sums to about f_c(x)
        start[0, context.target] = logits[0, context.target]
        composite = EpsilonPlusFlat(canonizers=[SequentialMergeBatchNorm()])
        # zennit registers its hooks and merges batch norms for the block only, and undoes both on exit
        with Gradient(model=context.model, composite=composite) as attributor:
            _, relevance = attributor(x, start)
    return channel_sum(relevance)
