"""Every explainer as captum has them: ``GradLIME(model).attribute(inputs, target)`` on a batch tensor.

``inputs`` are normalised images (B,3,H,W) (any float dtype, any device); the result is (B,1,H,W) signed
attributions in the inputs' dtype on the inputs' device. Underneath, each image is explained by the registry
explainer of the same name (:func:`cnnxai.explainers.explain`), so a batch gives exactly the explanations of its
images one by one; what the batch adds is that the LIME-family explainers (``lime``, ``gradlime``, ``camlime``,
``baylime``, ``normlime``) predict the perturbations of all its images in one stream of forwards
(:func:`lime_ext.predict_together`).

The suite explains 8-bit images (superpixels, hidden colours and the seed's draws are defined on them), so each
input is de-normalised with ``mean`` / ``std`` and rounded to the 8-bit grid: exact for inputs made by ``ToTensor``
from an image file, a change of at most 0.5/255 per pixel otherwise (a warning says so). The model still receives
inputs normalised with ``mean`` / ``std``.

Targets are class indices (an int, a list, a (B,) tensor, None for the predicted class) or target objects in
pytorch-grad-cam's style: a classifier target with an integer ``category`` (``ClassifierOutputTarget``) is that
class; any other callable (a detection box or segmentation region target) is explained as the score it computes
from the model's output (:class:`cnnxai.targets.TargetScore`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from cam_ext.layers import LayerNotFoundError
from cam_ext.layers import locate_layers as cam_locate_layers
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY, class_index, explain, make_context
from cnnxai.explainers.lime_family import shared_sampler
from cnnxai.explainers.registry import as_user_errors
from cnnxai.session import ImageSession
from cnnxai.targets import TargetScore
from cnnxai.zoo import Renormalised
from lime_ext import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LimeSettings,
    evaluation_mode,
    full_float32,
    module_device,
    predict_together,
)
from lime_ext.backends import check_backend

GRID_TOLERANCE = 0.01  # in 1/255 units: more than float rounding away from the 8-bit grid is worth a warning
# De-normalised values up to this far outside [0,1] are clamped (noise added by robustness metrics: Quantus's
# MaxSensitivity draws up to 0.2 in normalised units, 0.05 in pixels); further out, the mean and std are wrong.
RANGE_SLACK = 0.25


def locate_layers(model: nn.Module, example: torch.Tensor) -> tuple[str, ...]:
    """The CAM layer of a model that does not name its own (:func:`cam_ext.layers.locate_layers`: the zoo's
    ``model.default_layers``, a vision transformer's block, else the last spatial feature map); a model with
    none is a one-line :class:`UserInputError`."""
    try:
        return cam_locate_layers(model, example)
    except LayerNotFoundError as error:
        raise UserInputError(str(error)) from None


def to_frames(inputs: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalised images (B,3,H,W) -> the 8-bit RGB frames (B,H,W,3) they show, uint8.

    Values more than ``RANGE_SLACK`` outside [0,1] after de-normalising mean the wrong ``mean`` / ``std``: a
    :class:`UserInputError`. Values off the 8-bit grid by more than float rounding are rounded, with a warning."""
    if not isinstance(inputs, torch.Tensor):
        raise UserInputError(f"inputs must be a torch tensor (B,3,H,W), got {type(inputs).__name__}")
    if inputs.ndim != 4 or inputs.shape[1] != 3 or inputs.shape[0] < 1:
        raise UserInputError(
            f"inputs must be normalised RGB images (B,3,H,W), got shape {tuple(inputs.shape)}"
            + ("; add a batch dimension with inputs[None]" if inputs.ndim == 3 else "")
        )
    if not inputs.is_floating_point():
        raise UserInputError(f"inputs must be float images normalised with mean and std, got {inputs.dtype}")
    x = inputs.detach().to("cpu", torch.float64)
    pixels = (
        x * torch.tensor(std, dtype=torch.float64, device=x.device)[:, None, None]
        + torch.tensor(mean, dtype=torch.float64, device=x.device)[:, None, None]
    )
    if not bool(torch.isfinite(pixels).all()):
        raise UserInputError("inputs contain NaN or infinite values")
    low, high = float(pixels.min()), float(pixels.max())
    if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
        raise UserInputError(
            f"inputs de-normalised with mean={tuple(mean)} std={tuple(std)} span [{low:.3f}, {high:.3f}], not "
            f"[0, 1]: pass the mean and std the inputs were normalised with"
        )
    levels = pixels.clamp(0, 1) * 255
    off_grid = float((levels - levels.round()).abs().max())
    # The inputs' own precision: float16 stores an 8-bit image normalised only to about 0.1/255.
    rounding = 2 * 255 * max(std) * torch.finfo(inputs.dtype).eps * float(x.abs().max())
    outside = max(-low, high - 1) * 255
    if max(off_grid, outside) > max(GRID_TOLERANCE, rounding):
        clamped = f", and clamped to [0, 255] (up to {outside:.1f}/255 outside)" if outside > 0 else ""
        warnings.warn(
            f"inputs are not 8-bit images (up to {off_grid:.2f}/255 off the grid); they are explained rounded to "
            f"the 8-bit grid{clamped}", stacklevel=3,
        )  # fmt: skip
    return levels.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _is_class_target(target: Any) -> bool:
    return isinstance(target, (int, np.integer)) and not isinstance(target, bool)


def per_image_targets(target: Any, count: int) -> list[Any]:
    """``target`` as one entry per image: an int, a target object (see the module doc), or None (predicted)."""
    if target is None or _is_class_target(target) or callable(target):
        items = [target] * count
    elif isinstance(target, torch.Tensor | np.ndarray):
        if target.ndim > 1 or (target.ndim == 1 and len(target) != count):
            raise UserInputError(
                f"target must be an int or one class per image ({count}), got shape {tuple(target.shape)}"
            )
        items = [int(t) for t in target.reshape(-1).tolist()] * (count if target.ndim == 0 else 1)
    elif isinstance(target, Sequence) and not isinstance(target, str):
        if len(target) != count:
            raise UserInputError(f"{len(target)} targets for a batch of {count} images; give one per image")
        items = list(target)
    else:
        raise UserInputError(
            f"target must be an int, a list or tensor of classes, or a target object, got {type(target).__name__}"
        )
    resolved = []
    for item in items:
        if item is None or (callable(item) and not hasattr(item, "category")):
            resolved.append(item)  # the predicted class, or a score of the model's output
        else:
            resolved.append(class_index(item))  # an int or a ClassifierOutputTarget (grad-cam's or ours)
    return resolved


class Explainer:
    """A registry explainer with captum's vocabulary: ``Explainer(model, "rise", masks=2000).attribute(x, 3)``.

    Args:
        model: the classifier (or task model: see targets), on the device it runs on.
        name: a registered explainer (``python -m cnnxai.explainers --list``).
        layers: CAM layers by module path, for explainers that take them; None: the model's own
            (:func:`locate_layers`).
        mean, std: the normalisation of the inputs (ImageNet's by default).
        batch_size: inputs per forward pass (None: chosen from the device).
        amp: float16 autocast of the perturbation forwards on CUDA.
        tf32: allow TF32 convolutions and matrix products on CUDA (off: full float32, as in every tool).
        backend: what runs the forward-only passes: 'torch', 'onnxruntime', 'openvino' or 'auto'
            (:class:`lime_ext.TorchClassifier`; None: the process default, 'torch' unless set); gradients always
            run in ``model``.
        progress: a progress bar over the batch's images.
        options: the explainer's declared options; an unknown one is a one-line :class:`UserInputError`.
    """

    def __init__(
        self,
        model: nn.Module,
        name: str,
        layers: str | Sequence[str] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        batch_size: int | None = None,
        amp: bool = False,
        progress: bool = False,
        backend: str | None = None,
        tf32: bool = False,
        **options: Any,
    ) -> None:
        self.spec = REGISTRY.lookup(name)
        with as_user_errors():
            self.backend = None if backend is None else check_backend(backend, module_device(model))
        self.takes_layers = any(option.name == "layers" for option in self.spec.options)
        if layers is not None and not self.takes_layers:
            raise UserInputError(f"explainer {name} takes no layers")
        REGISTRY.options(name, options)  # refuse unknown options now, not at the first batch
        self.model, self.name = model, name
        self.layers = (layers,) if isinstance(layers, str) else (tuple(layers) if layers else None)
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise UserInputError(f"mean and std must be 3 values each, std positive; got {mean} and {std}")
        self.batch_size, self.amp, self.progress, self.options = batch_size, amp, progress, options
        self.tf32 = bool(tf32)
        self._renormalised = (
            model
            if (self.mean, self.std) == (IMAGENET_MEAN, IMAGENET_STD)
            else Renormalised(model, self.mean, self.std)
        )

    def _layers(self, inputs: torch.Tensor) -> tuple[str, ...]:
        if self.layers is None:
            self.layers = locate_layers(self.model, inputs[:1].to(module_device(self.model)))
        prefix = "inner." if self._renormalised is not self.model else ""
        return tuple(prefix + layer for layer in self.layers)

    def _predicted(self, inputs: torch.Tensor) -> list[int]:
        """The model's classes for ``inputs`` themselves (captum's target None), in one batch: not the sessions'
        predictions, which are of the 8-bit frames the inputs show (their rounding can move a near tie)."""
        with evaluation_mode(self.model), full_float32(not self.tf32), torch.no_grad():
            logits = self.model(inputs.detach().to(module_device(self.model), torch.float32))
        return [int(c) for c in logits.argmax(dim=-1).tolist()]

    def attribute(self, inputs: torch.Tensor, target: Any = None, seed: int = 0) -> torch.Tensor:
        """Attributions (B,1,H,W) of ``inputs`` (B,3,H,W) for ``target`` (see the module doc), from ``seed``.

        Image i's map is that of the registry explainer on image i alone with the same seed (the seed and the
        image fix its random draws), whatever else is in the batch."""
        frames = to_frames(inputs, self.mean, self.std)
        targets = per_image_targets(target, len(frames))
        if any(t is None for t in targets):
            predicted = self._predicted(inputs)
            targets = [predicted[i] if t is None else t for i, t in enumerate(targets)]
        layers = self._layers(inputs) if self.takes_layers else None
        jobs = []  # (the model the explainer sees, the class it explains, the image's session, CAM layers)
        tasks: dict[int, TargetScore] = {}  # one per target object: images with the same one share forwards
        for frame, t in zip(frames, targets, strict=True):
            if isinstance(t, int):  # per_image_targets made every class an int
                model, label, job_layers = self._renormalised, t, layers
            else:  # a score of the model's output: the explainers see a one-output model
                if id(t) not in tasks:
                    tasks[id(t)] = TargetScore(self._renormalised, t, input_space="imagenet")
                model, label, job_layers = tasks[id(t)], 0, layers and tuple(TargetScore.layer_names(layers))
            jobs.append((model, label, ImageSession(model, frame, self.amp, self.tf32, self.backend), job_layers))
        common = dict(
            seed=int(seed), batch_size=self.batch_size, amp=self.amp, tf32=self.tf32, backend=self.backend,
            **self.options,
        )
        if self.spec.neighbourhood:
            self._predict_together(frames, jobs, common)
        maps = []
        for i in tqdm(range(len(frames)), desc=self.name, unit="image", disable=not self.progress):
            model, label, session, job_layers = jobs[i]
            given = {"layers": job_layers} if job_layers else {}
            maps.append(explain(self.name, model, frames[i], label, session=session, **common, **given).map)
        return torch.from_numpy(np.stack(maps)[:, None]).to(device=inputs.device, dtype=inputs.dtype)

    def _predict_together(self, frames: np.ndarray, jobs: list, common: dict) -> None:
        """Draw every image's LIME neighbourhood into its session, predicting the images that share a model
        in one stream of forwards (the explainer then finds its samples predicted). The images are segmented in
        threads (quickshift and SLIC release the GIL), which matters where the forwards are fast (a GPU)."""
        contexts = []
        for frame, (model, label, session, layers) in zip(frames, jobs, strict=True):
            given = {"layers": layers} if layers else {}
            contexts.append(make_context(self.name, model, frame, label, session=session, **common, **given))
        settings = contexts[0].settings(LimeSettings)
        if settings.adaptive:  # rounds drawn by a stopping test: nothing to predict ahead
            return
        with ThreadPoolExecutor(max_workers=min(len(contexts), os.cpu_count() or 1)) as threads:
            samplers = list(threads.map(lambda context: shared_sampler(context, settings), contexts))
        groups: dict[int, list] = {}
        for context, sampler in zip(contexts, samplers, strict=True):
            groups.setdefault(id(context.model), []).append(sampler)
        for group in groups.values():
            predict_together(group, int(settings.num_samples), self.progress)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, layers={self.layers}, options={self.options})"


class GradLIME(Explainer):
    """GradLIME: LIME with the CAM of ``method`` (Grad-CAM by default) of ``layers`` as per-superpixel prior."""

    def __init__(
        self,
        model: nn.Module,
        layers: str | Sequence[str] | None = None,
        method: str = "gradcam",
        num_samples: int | str = 1000,
        **options: Any,
    ) -> None:
        name = "gradlime" if method == "gradcam" and type(self) is GradLIME else "camlime"
        if name == "camlime":
            options["method"] = method
        super().__init__(model, name, layers, num_samples=num_samples, **options)


class CamLIME(GradLIME):
    """CamLIME: GradLIME with any CAM method's prior (the registry's ``camlime``; ``method`` as there)."""


class LIME(Explainer):
    """Plain LIME on the same perturbation engine (lime_image's kernel, ridge and quickshift defaults)."""

    def __init__(self, model: nn.Module, num_samples: int | str = 1000, **options: Any) -> None:
        super().__init__(model, "lime", num_samples=num_samples, **options)


def quantus_explain_func(
    model: nn.Module,
    inputs: np.ndarray,
    targets: np.ndarray | Sequence[int] | int | None,
    method: str = "gradlime",
    seed: int = 0,
    device: Any = None,
    **kwargs: Any,
) -> np.ndarray:
    """Quantus's ``explain_func``: numpy (B,3,H,W) normalised inputs and (B,) classes -> float32 (B,1,H,W).

    ``method`` is any registered explainer; ``kwargs`` are :class:`Explainer`'s arguments (``layers``, ``mean``,
    ``std``, ``batch_size``) and the explainer's options (``num_samples=500``). The work runs on the model's
    device; Quantus's ``device`` only says where the inputs go first."""
    del device  # the explainers run where the model is
    # Quantus's arrays live on the host, and so do the maps it gets back; attribute() takes inputs on any device.
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)  # device-ok: host arrays in, host maps out
    if isinstance(targets, np.ndarray):
        targets = torch.from_numpy(targets.astype(np.int64))  # device-ok: class indices, read on the host
    explainer = Explainer(model, method, **kwargs)
    return explainer.attribute(x, targets, seed).cpu().numpy().astype(np.float32)
