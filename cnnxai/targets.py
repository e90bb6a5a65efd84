"""Targets: what score of a model is explained, as small callables on one image's model output.

The convention is pytorch-grad-cam's (``ClassifierOutputTarget``, ``SemanticSegmentationTarget``,
``FasterRCNNBoxScoreTarget``): a target maps the output of the model for ONE image to a scalar tensor, and is
differentiable wherever the output is. :class:`TargetScore` turns a task model and a target into a model with one
output, the explained score (B,1), so both halves of GradLIME / CamLIME use the same score: the CAM backpropagates
it, and the LIME fit regresses it over the perturbed images. Every registry explainer then works on detection,
segmentation and face models with ``target=0``: each application is a target, not a new pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from lime_ext import IMAGENET_MEAN, IMAGENET_STD, module_device

INPUT_SPACES = ("unit", "imagenet")  # [0,1] RGB (torchvision detection models) or ImageNet-normalised


@dataclass(frozen=True)
class ClassifierOutputTarget:
    """The output of class ``category``: ``output`` (C,) -> ``output[category]`` (grad-cam's namesake)."""

    category: int

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return output[..., self.category]


def box_iou(boxes: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """IoU (n,) of boxes (n,4) with one box (4,), all xyxy; differentiable in both (torchvision's formula)."""
    top_left = torch.maximum(boxes[:, :2], box[:2])
    bottom_right = torch.minimum(boxes[:, 2:], box[2:])
    overlap = (bottom_right - top_left).clamp(min=0).prod(dim=1)
    areas = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(dim=1)
    area = (box[2:] - box[:2]).clamp(min=0).prod()
    return overlap / (areas + area - overlap).clamp(min=1e-9)


def _constant(cache: dict, value: Any, like: torch.Tensor) -> torch.Tensor:
    """``value`` (a box, a mask) as a tensor on ``like``'s device and of its dtype, made once per device and dtype
    and kept in the target's ``cache``: a target called on every perturbed image copies its constants to the
    device once, not once per image (each host-to-device copy of pageable memory waits for the device). Made
    outside inference mode, so that a constant first made during a forward-only pass can also take part in a
    backward pass (a CAM of the same target)."""
    key = (like.device, like.dtype)
    if key not in cache:
        with torch.inference_mode(False):
            cache[key] = torch.tensor(np.asarray(value), dtype=like.dtype, device=like.device)
    return cache[key]


@dataclass(frozen=True)
class DetectionBoxTarget:
    """The evidence for one detected box: the best match, over the detections of the box's class, of
    IoU(detection, box) x the detection's score; 0 when no detection of that class overlaps the box.

    This is D-RISE's similarity (Petsiuk et al. 2021) in the variant for detectors that emit class-specific
    detections (torchvision's, and those of this suite): D-RISE multiplies the IoU by the cosine of the class
    probability vectors and an objectness term; a torchvision detection carries one class and its score, so the
    class term is the score itself when the classes agree and 0 otherwise, and there is no objectness.

    ``detection`` is one image's torchvision-format output: ``{"boxes": (n,4) xyxy, "scores": (n,),
    "labels": (n,)}``. The result is differentiable in the scores and, unless ``box_gradient`` is False, in the
    boxes (their regression), which is what a CAM of the box backpropagates. It is computed on the device
    without reading anything back (no host synchronisation per image).
    """

    box: tuple[float, float, float, float]
    label: int
    box_gradient: bool = True
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __call__(self, detection: dict[str, torch.Tensor]) -> torch.Tensor:
        scores = detection["scores"]
        boxes = detection["boxes"] if self.box_gradient else detection["boxes"].detach()
        reference = _constant(self._cache, self.box, boxes)
        evidence = torch.where(detection["labels"] == self.label, box_iou(boxes, reference) * scores, 0.0)
        # The appended zero is the score when no detection has the class (or there is none at all).
        return torch.cat([evidence, scores.new_zeros(1)]).max()


@dataclass(frozen=True, eq=False)
class SegmentationTarget:
    """The evidence for a region: the mean (or sum) over ``mask`` (H,W) bool of the probability (softmax over
    classes) of ``category``. ``output`` is one image's logits (K,H,W); the mask is usually where the unperturbed
    prediction is ``category`` (or one connected part of it), and stays fixed for the perturbed images. The
    mask goes to the device once and is applied as a product (boolean indexing would read its size back from
    the device for every image)."""

    category: int
    mask: np.ndarray
    reduce: str = "mean"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.reduce not in ("mean", "sum"):
            raise ValueError(f"reduce must be 'mean' or 'sum', got {self.reduce!r}")
        if not np.any(self.mask):
            raise ValueError("the region to explain is empty")

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        probability = torch.softmax(output.float(), dim=0)[self.category]
        mask = _constant(self._cache, np.asarray(self.mask, dtype=bool), probability)
        total = (probability * mask).sum()
        return total / int(np.count_nonzero(self.mask)) if self.reduce == "mean" else total


def per_image(outputs: Any, count: int) -> list[Any]:
    """Split a batch's model output into one output per image: a list of detection dicts as it is, the
    ``'out'`` tensor of a torchvision segmentation dict, or a (B,...) tensor."""
    if isinstance(outputs, dict):
        outputs = outputs["out"]
    if isinstance(outputs, (list, tuple)):
        items = list(outputs)
    elif isinstance(outputs, torch.Tensor):
        items = list(outputs.unbind(0))
    else:
        raise TypeError(f"cannot split a model output of type {type(outputs).__name__} into images")
    if len(items) != count:
        raise ValueError(f"the model returned {len(items)} outputs for {count} images")
    return items


class TargetScore(nn.Module):
    """A task model seen through one target: ImageNet-normalised images (B,3,H,W) -> scores (B,1).

    The suite's explainers feed ImageNet-normalised inputs (:class:`lime_ext.TorchClassifier`); ``input_space``
    says what the task model takes: ``'unit'`` (RGB in [0,1], torchvision's detection models; the normalisation
    is undone, exactly up to float rounding) or ``'imagenet'`` (torchvision's segmentation models).
    ``output_activation = 'identity'`` tells the explainers that the output is the score itself (no softmax).

    ``cam_model`` is the model the CAMs are computed on when the task model itself cannot be backpropagated
    (the face cascade: see :mod:`cnnxai.tasks.face`); it takes the same inputs and gives the same kind of score.
    The task model is the submodule ``task``, so its CAM layers are named ``task.<path in the model>``.
    """

    output_activation = "identity"

    def __init__(
        self,
        model: nn.Module,
        target: Callable[[Any], torch.Tensor],
        input_space: str = "unit",
        cam_model: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if input_space not in INPUT_SPACES:
            raise ValueError(f"input_space must be one of {INPUT_SPACES}, got {input_space!r}")
        self.task = model
        self.target = target
        self.input_space = input_space
        self.cam_model = cam_model
        device = module_device(model)  # made where the task model is, and moved with this module
        self.register_buffer(
            "mean", torch.tensor(IMAGENET_MEAN, device=device)[:, None, None], persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(IMAGENET_STD, device=device)[:, None, None], persistent=False
        )

    @staticmethod
    def layer_names(layers: Sequence[str]) -> list[str]:
        """The names of the task model's layers (module paths in it) as seen inside a TargetScore."""
        return ["task." + layer for layer in layers]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x * self.std + self.mean if self.input_space == "unit" else x
        outputs = self.task(images)
        scores = [self.target(output) for output in per_image(outputs, len(x))]
        return torch.stack(scores).float().reshape(len(x), 1)
