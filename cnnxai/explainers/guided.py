"""Integrated Gradients with guided non-linearity (GNL): IG's straight path, guided backward through ReLU and max-pool.

Not PAIR's adaptive-path "Guided IG" (algorithms.md 6). ReLU / ReLU6 modules are swapped for modules whose
backward passes only positive gradients (g_in = g_out [z in the active range] [g_out > 0]); max-pool modules
route only positive output gradients to their winners. The swap happens inside a context manager that puts the
original modules back, also on error. A model that applies ReLU functionally (torch.relu, F.relu) cannot be
guided by swapping modules: it is detected during the call and refused with a message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients
from torch import nn
from torch.overrides import TorchFunctionMode

from cam_ext import evaluation_mode
from cnnxai.explainers.registry import Attribution, ExplainContext, channel_sum, register


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


class GuidedReLU(nn.Module):
    """ReLU (``upper=None``) or ReLU6 (``upper=6``) whose backward passes only positive gradients."""

    def __init__(self, upper: float | None = None) -> None:
        super().__init__()
        self.upper = upper

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return _GuidedClamp.apply(z, self.upper)


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


def _guided_replacement(module: nn.Module) -> nn.Module | None:
    if type(module) is nn.ReLU:
        return GuidedReLU()
    if type(module) is nn.ReLU6:
        return GuidedReLU(6.0)
    if type(module) is nn.MaxPool2d:
        return GuidedMaxPool2d(module)
    return None


@contextmanager
def guided_nonlinearities(model: nn.Module) -> Iterator[int]:
    """Swap ReLU, ReLU6 and MaxPool2d modules for guided ones for the block; yields how many were swapped."""
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                replacement = _guided_replacement(child)
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


@register(
    "guided_ig_gnl",
    "IG with guided non-linearity: IG's path, ReLU/ReLU6/max-pool backward pass positive gradients only",
)
def guided_ig_gnl(context: ExplainContext) -> Attribution:
    x = context.input_tensor
    model = context.model
    with evaluation_mode(model):
        functional = functional_nonlinearities(model, x)
        if functional:
            raise ValueError(
                f"guided_ig_gnl cannot guide this model: it calls {', '.join(sorted(functional))} directly instead of "
                "through nn.ReLU / nn.MaxPool2d modules; use ig, or a model built from modules"
            )
        with guided_nonlinearities(model):
            attributions = IntegratedGradients(model).attribute(
                x.requires_grad_(True), baselines=torch.zeros_like(x), target=context.target,
                n_steps=int(context.option("ig_steps", 50)), internal_batch_size=context.batch_size or 32,
            )  # fmt: skip
    return channel_sum(attributions)
