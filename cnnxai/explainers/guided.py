"""Modified backward passes through non-linearities: IG with guided non-linearity (GNL) and Deconvolution.

GNL is IG's straight path with guided backward through ReLU and max-pool (not PAIR's adaptive-path "Guided
IG", docs/method.md#ig-with-guided-non-linearity): ReLU / ReLU6 modules are swapped for modules whose backward passes only positive
gradients (g_in = g_out [z in the active range] [g_out > 0]); max-pool modules route only positive output
gradients to their winners. Deconvolution (Zeiler & Fergus) swaps ReLU / ReLU6 for modules whose backward is
ReLU(g_out), whatever the forward input; captum's Deconvolution hooks ``nn.ReLU`` only, so on ReLU6 networks
(EfficientNet-Lite0, MobileNetV2) it silently returns the plain gradient. The swaps happen inside a context
manager that puts the original modules back, also on error. A model that applies ReLU functionally (torch.relu,
F.relu) cannot be changed by swapping modules: it is detected during the call and refused with a message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnxai.errors import UserInputError
from cnnxai.explainers.gradients import IG_OPTIONS
from cnnxai.explainers.registry import Attribution, ExplainContext, channel_sum, register
from lime_ext import evaluation_mode


class _GuidedClamp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, upper: float | None) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.upper = upper
        return z.clamp(min=0) if upper is None else z.clamp(0, upper)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (z,) = ctx.saved_tensors
        active = z > 0 if ctx.upper is None else (z > 0) & (z < ctx.upper)
        return grad * active * (grad > 0), None


class _DeconvClamp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, upper: float | None) -> torch.Tensor:
        return z.clamp(min=0) if upper is None else z.clamp(0, upper)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad.clamp(min=0), None


class _RuleReLU(nn.Module):
    """ReLU (``upper=None``) or ReLU6 (``upper=6``) whose backward is the ``rule`` autograd function's."""

    rule: type[torch.autograd.Function]

    def __init__(self, upper: float | None = None) -> None:
        super().__init__()
        self.upper = upper

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.rule.apply(z, self.upper)


class DeconvReLU(_RuleReLU):
    """The deconvnet's backward: ReLU of the output gradient, whatever the input."""

    rule = _DeconvClamp


class GuidedReLU(_RuleReLU):
    """Guided backprop's backward: only positive gradients, only where the input is in the active range."""

    rule = _GuidedClamp


class _PositiveGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp(min=0)


_INSIDE_GUIDED = [0]  # depth of guided-module calls: their own pooling calls are not "functional"


class GuidedMaxPool2d(nn.Module):
    """The original max-pool; its output gradient is clamped at 0 before it is routed to the winners."""

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _INSIDE_GUIDED[0] += 1
        try:
            pooled = self.pool(x)
        finally:
            _INSIDE_GUIDED[0] -= 1
        return _PositiveGradient.apply(pooled)


RULES = ("guided", "deconvnet")


def _replacement(module: nn.Module, rule: str) -> nn.Module | None:
    relu = GuidedReLU if rule == "guided" else DeconvReLU
    if type(module) is nn.ReLU:
        return relu()
    if type(module) is nn.ReLU6:
        return relu(6.0)
    if type(module) is nn.MaxPool2d and rule == "guided":  # the deconvnet routes through max-pool's switches
        return GuidedMaxPool2d(module)
    return None


@contextmanager
def guided_nonlinearities(model: nn.Module, rule: str = "guided") -> Iterator[int]:
    """Swap ReLU and ReLU6 (and, for 'guided', MaxPool2d) modules for ones with the ``rule``'s backward
    ('guided' or 'deconvnet') for the block; yields how many were swapped."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                replacement = _replacement(child, rule)
                if replacement is not None:
                    setattr(parent, name, replacement)
                    swapped.append((parent, name, child))
        yield len(swapped)
    finally:
        for parent, name, child in reversed(swapped):
            setattr(parent, name, child)


class _FunctionalReluDetector(TorchFunctionMode):
    """Counts ReLU-like calls made outside module swaps (F.relu, torch.relu, F.relu6, F.hardtanh, max_pool2d)."""

    WATCHED = {
        F.relu,
        torch.relu,
        torch.relu_,
        F.relu6,
        F.hardtanh,
        F.max_pool2d,
        torch.max_pool2d,
        torch.Tensor.relu,
        torch.Tensor.relu_,
    }

    def __init__(self) -> None:
        super().__init__()
        self.calls: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.WATCHED and not _INSIDE_GUIDED[0]:
            self.calls.add(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def functional_nonlinearities(model: nn.Module, x: torch.Tensor) -> set[str]:
    """Names of ReLU / max-pool functions the model calls directly (not through nn modules)."""
    with guided_nonlinearities(model), torch.no_grad(), _FunctionalReluDetector() as detector:
        model(x)
    return detector.calls


def _refuse_functional(model: nn.Module, x: torch.Tensor, method: str, instead: str) -> None:
    functional = functional_nonlinearities(model, x)
    if functional:
        raise UserInputError(
            f"{method} cannot change this model's backward pass: it calls {', '.join(sorted(functional))} directly "
            f"instead of through nn.ReLU / nn.MaxPool2d modules; use {instead}, or a model built from modules"
        )


@register(
    "guided_ig_gnl",
    "IG with guided non-linearity: IG's path, ReLU/ReLU6/max-pool backward pass positive gradients only",
    IG_OPTIONS,
)
def guided_ig_gnl(context: ExplainContext) -> Attribution:
    x = context.input_tensor
    model = context.model
    with evaluation_mode(model):
        _refuse_functional(model, x, "guided_ig_gnl", "ig")
        with guided_nonlinearities(model):
            attributions = IntegratedGradients(model).attribute(
                x.requires_grad_(True), baselines=torch.zeros_like(x), target=context.target,
                n_steps=context.option("steps"), internal_batch_size=context.gradient_batch,
            )  # fmt: skip
    return channel_sum(attributions)


@register(
    "deconvolution",
    "Deconvolution: the gradient of the logit with ReLU/ReLU6 backward = ReLU(output gradient), summed over channels",
)
def deconvolution(context: ExplainContext) -> Attribution:
    x = context.input_tensor
    model = context.model
    with evaluation_mode(model):
        _refuse_functional(model, x, "deconvolution", "gradient")
        with guided_nonlinearities(model, rule="deconvnet"):
            x.requires_grad_(True)
            (gradient,) = torch.autograd.grad(model(x)[0, context.target], x)
    return channel_sum(gradient)
