"""What the paper figures of one image and one model share, computed once: the prediction, one LIME
neighbourhood (so every LIME / CamLIME panel of a figure is a paired comparison), and CAMs by method and layers."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
import torch
from torch import nn

from cam_ext import compute_cams, fuse_layer_maps
from cam_ext.compute import LayerCams
from cnnxai.explainers import Attribution, ExplainContext, explain
from cnnxai.explainers.lime_family import shared_neighbourhood
from lime_ext import Explanation, Neighbourhood, TorchClassifier, segment_prior


class FigureContext:
    """One image explained by one model for the figures.

    Args:
        model: the classifier on its device; ``model_name`` its zoo name.
        frame: the image in the model-input frame, RGB uint8 (224,224,3).
        options: explainer settings: ``num_samples``, ``segmenter``, ``hide_color``, ``seed``, ``batch_size``,
            ``target`` (None: the prediction), ``layers`` (the model's default CAM layers), ``multi_layers``
            (several, low to high level), and the registry's budgets (``rise_masks``, ``ig_steps``, ...).
        class_names: the names of the model's classes.
    """

    def __init__(
        self, model: nn.Module, model_name: str, frame: np.ndarray, options: dict, class_names: list[str]
    ):
        self.model, self.model_name, self.frame = model, model_name, frame
        self.options, self.class_names = dict(options), class_names
        self.classifier = TorchClassifier(model)
        self.device = self.classifier.device
        self.seed = int(self.options.get("seed", 0))
        self.shared: dict = {}  # the explainer registry's per-image state: the LIME family's neighbourhood
        self._cams: dict[tuple, LayerCams] = {}

    @cached_property
    def x(self) -> torch.Tensor:
        """The normalised model input (1,3,H,W)."""
        return self.classifier.prepare_rgb(self.frame)[None]

    @cached_property
    def probabilities(self) -> np.ndarray:
        with self.classifier.session():
            return self.classifier.forward_prepared(self.x)[0].cpu().numpy()

    @property
    def target(self) -> int:
        chosen = self.options.get("target")
        return int(np.argmax(self.probabilities)) if chosen is None else int(chosen)

    @property
    def target_title(self) -> str:
        return f"{self.class_names[self.target]}\np = {self.probabilities[self.target]:.3f} (class {self.target})"

    @property
    def explainer_options(self) -> dict:
        """The options the explainer registry takes (everything but seed, batch size and target)."""
        return {k: v for k, v in self.options.items() if k not in ("seed", "batch_size", "target")}

    @cached_property
    def neighbourhood(self) -> Neighbourhood:
        """The image's one LIME neighbourhood (segments, Z, predictions): the registry's, so explainers share it."""
        context = ExplainContext(
            self.model, self.frame, self.target, self.seed, self.device, self.options.get("batch_size"),
            self.explainer_options, self.shared,
        )  # fmt: skip
        return shared_neighbourhood(context)

    def cams(self, layers: Sequence[str], method: str) -> LayerCams:
        """Raw CAMs of ``method`` at ``layers`` for the target, from one pass (cached)."""
        key = (tuple(layers), method)
        if key not in self._cams:
            self._cams[key] = compute_cams(
                self.model, self.x, list(layers), method=method, targets=self.target,
                batch_size=self.options.get("batch_size") or 32,
            )  # fmt: skip
        return self._cams[key]

    def fused_map(self, maps: Sequence[torch.Tensor]) -> np.ndarray:
        """CamLIME's fusion of raw maps (each (1,h,w)): upsampled, min-max normalised, averaged; (H,W) in [0,1]."""
        return fuse_layer_maps(list(maps), self.frame.shape[:2], rule="mean")[0].cpu().numpy()

    def cam_map(self, method: str) -> np.ndarray:
        """The CAM of the default layers, fused as CamLIME fuses them: (H,W) in [0,1]."""
        return self.fused_map(list(self.cams(self.options["layers"], method).maps.values()))

    def activation(self, method: str) -> np.ndarray:
        """The first default layer's raw map at its own resolution, divided by its maximum (the seeds' panel)."""
        raw = next(iter(self.cams(self.options["layers"], method).maps.values()))[0].cpu().numpy()
        return raw / (raw.max() or 1.0)

    def lime(self) -> Explanation:
        return self.neighbourhood.fit(labels=[self.target], cam_mode="none")

    def ours(self, cam_map: np.ndarray | torch.Tensor) -> Explanation:
        """GradLIME / CamLIME on the shared neighbourhood with the prior of ``cam_map`` (any resolution)."""
        prior = segment_prior(torch.as_tensor(cam_map), self.neighbourhood.segments)
        return self.neighbourhood.fit(labels=[self.target], prior=prior, cam_mode="feature")

    def explain(self, name: str, **options) -> Attribution:
        """A registered explainer on this image (the LIME family reuses the shared neighbourhood)."""
        return explain(
            name, self.model, self.frame, self.target, seed=self.seed, device=self.device,
            batch_size=self.options.get("batch_size"), shared=self.shared, **{**self.explainer_options, **options},
        )  # fmt: skip
