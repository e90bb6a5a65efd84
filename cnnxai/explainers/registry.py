"""One vocabulary for every explainer: the same arguments in, a signed (H,W) attribution map out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnxai.errors import UserInputError
from lime_ext import TorchClassifier, auto_batch_size


@dataclass
class ExplainContext:
    """The arguments every explainer receives.

    ``image`` is the prepared RGB uint8 image (H,W,3) in the model-input frame; ``target`` the class;
    ``seed`` seeds every random draw; ``options`` holds method options (``layers`` for CAM-based methods,
    ``num_samples``, ...); ``shared`` is per-image state that explainers compared on one image share (the
    LIME family's single perturbation set).
    """

    model: nn.Module
    image: np.ndarray
    target: int
    seed: int = 0
    device: torch.device | None = None
    batch_size: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.device is None:
            param = next(iter(self.model.parameters()), None)
            self.device = param.device if param is not None else torch.device("cpu")
        self.classifier = TorchClassifier(self.model)

    @property
    def input_tensor(self) -> torch.Tensor:
        """The normalised model input (1,3,H,W) on the device (a fresh tensor each call)."""
        return self.classifier.prepare_rgb(self.image)[None]

    @property
    def forward_batch(self) -> int:
        """Inputs per forward-only pass: the caller's batch size, or the device's (see ``auto_batch_size``)."""
        return self.batch_size or auto_batch_size(self.device)

    @property
    def gradient_batch(self) -> int:
        """Inputs per forward+backward pass: as ``forward_batch``, at most 32 unless set (backward keeps
        every activation, which the inference budget of ``auto_batch_size`` does not count)."""
        return self.batch_size or min(auto_batch_size(self.device), 32)

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)


@dataclass(frozen=True)
class Attribution:
    """``map`` float32 (H,W), signed, in the model-input frame; ``extras`` e.g. 'per_channel' (3,H,W)."""

    map: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)


ExplainFn = Callable[[ExplainContext], Attribution]


@dataclass(frozen=True)
class ExplainerSpec:
    name: str
    fn: ExplainFn
    description: str
    random: bool  # uses random draws (so determinism under a seed is tested)


REGISTRY: dict[str, ExplainerSpec] = {}


def register(name: str, description: str, random: bool = False) -> Callable[[ExplainFn], ExplainFn]:
    def decorate(fn: ExplainFn) -> ExplainFn:
        if name in REGISTRY:
            raise ValueError(f"explainer {name!r} registered twice")
        REGISTRY[name] = ExplainerSpec(name, fn, description, random)
        return fn

    return decorate


def get_explainer(name: str) -> ExplainerSpec:
    if name not in REGISTRY:
        raise UserInputError(
            f"unknown explainer {name!r}; list them with: python -m cnnxai.explainers --list"
        )
    return REGISTRY[name]


def channel_sum(per_channel: torch.Tensor) -> Attribution:
    """(1,3,H,W) attributions -> Attribution with the signed channel sum as map and the channels as extras."""
    per_channel = per_channel.detach().float()[0]
    return Attribution(
        per_channel.sum(0).cpu().numpy().astype(np.float32), {"per_channel": per_channel.cpu().numpy()}
    )


def explain(
    name: str,
    model: nn.Module,
    image: np.ndarray,
    target: int,
    seed: int = 0,
    device: torch.device | None = None,
    batch_size: int | None = None,
    shared: dict | None = None,
    **options: Any,
) -> Attribution:
    """Run explainer ``name`` on one prepared image (RGB uint8 (H,W,3)) for class ``target``."""
    spec = get_explainer(name)
    context = ExplainContext(
        model, image, int(target), seed, device, batch_size, options, shared if shared is not None else {}
    )
    result = spec.fn(context)
    if result.map.shape != image.shape[:2] or result.map.dtype != np.float32:
        raise RuntimeError(
            f"explainer {name} returned {result.map.dtype} {result.map.shape}, not float32 {image.shape[:2]}"
        )
    return result
