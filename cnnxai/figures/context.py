"""What the paper figures of one image share, computed once in its :class:`~cnnxai.session.ImageSession`: the
prediction, one LIME neighbourhood (so every LIME / CamLIME panel of a figure is a paired comparison), and the CAMs
by method and layers; and the typed settings of one figure (:class:`FigureSettings`, :class:`FigureRun`) that the
catalogue's functions read.

Every LIME, GradLIME / CamLIME and CAM panel comes from the explainer registry (:func:`cnnxai.explainers.explain`):
the figures have no computation of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import nn

from cam_ext import CamSettings, LayerCams
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY, Attribution, explain, make_context
from cnnxai.explainers.cams import shared_cams
from cnnxai.explainers.lime_family import shared_neighbourhood
from cnnxai.explainers.sise import block_output_layers
from cnnxai.session import ImageSession
from lime_ext import CamLimeExplainer, Explanation, LimeSettings, Neighbourhood


class FigureContext:
    """One image explained by one model for the figures.

    Args:
        model: the classifier on its device; ``model_name`` its zoo name.
        frame: the image in the model-input frame, RGB uint8 (224,224,3).
        layers: the model's default CAM layers.
        options: each explainer's given options (``options['lime']``, ``options['camlime']``, ...); the
            explainers' declared defaults fill the rest.
        class_names: the names of the model's classes.
        seed, batch_size: of every explainer; ``target``: the class explained (None: the prediction).
    """

    def __init__(
        self,
        model: nn.Module,
        model_name: str,
        frame: np.ndarray,
        layers: Sequence[str],
        options: Mapping[str, Mapping[str, Any]],
        class_names: list[str],
        seed: int = 0,
        batch_size: int | None = None,
        target: int | None = None,
    ) -> None:
        self.model, self.model_name, self.frame = model, model_name, frame
        self.layers = tuple(layers)
        self.options = {name: dict(given) for name, given in options.items()}
        self.class_names, self.seed, self.batch_size = class_names, int(seed), batch_size
        self.requested_target = target
        # The image on the model: its prediction and the explainer registry's per-image state (the neighbourhood,
        # the CAMs), shared by every panel.
        self.session = ImageSession(model, frame)
        self.classifier = self.session.classifier
        self.device = self.session.device

    @property
    def x(self) -> torch.Tensor:
        """The normalised model input (1,3,H,W)."""
        return self.session.x

    @property
    def probabilities(self) -> np.ndarray:
        """The classifier's output (C,) on the image (the session's one forward)."""
        return self.session.probabilities

    @property
    def target(self) -> int:
        chosen = self.requested_target
        return self.session.predicted if chosen is None else int(chosen)

    @property
    def target_title(self) -> str:
        return f"{self.class_names[self.target]}\np = {self.probabilities[self.target]:.3f} (class {self.target})"

    def given(self, name: str, **overrides: Any) -> dict[str, Any]:
        """The options explainer ``name`` gets here: the run's, the default layers where it takes layers, and
        ``overrides``."""
        given = dict(self.options.get(name, {}))
        if any(option.alias == "layers" for option in REGISTRY.lookup(name).options):
            given.setdefault("layers", list(self.layers))
        return {**given, **overrides}

    def explain(self, name: str, **overrides: Any) -> Attribution:
        """A registered explainer on this image (the LIME family reuses the shared neighbourhood, CAMs are shared)."""
        return explain(name, *self._arguments(), **self.given(name, **overrides))

    def _arguments(self) -> tuple:
        return self.model, self.frame, self.target, self.seed, self.device, self.batch_size, self.session

    @cached_property
    def lime_settings(self) -> LimeSettings:
        """The settings of the LIME family's neighbourhood (the ``lime`` options of the run)."""
        return LimeSettings(**REGISTRY.options("lime", self.given("lime")))

    @cached_property
    def neighbourhood(self) -> Neighbourhood:
        """The image's one LIME neighbourhood (segments, Z, predictions): the registry's, so explainers share it."""
        return shared_neighbourhood(make_context("lime", *self._arguments()), self.lime_settings)

    def lime(self) -> Explanation:
        return self.explain("lime").extras["explanation"]

    def ours(self, method: str, layers: Sequence[str] | None = None) -> Explanation:
        """CamLIME of ``method`` at ``layers`` (default: the model's) on the shared neighbourhood."""
        return self.explain("camlime", method=method, layers=list(layers or self.layers)).extras[
            "explanation"
        ]

    def cams(self, layers: Sequence[str], method: str) -> LayerCams:
        """Raw CAMs of ``method`` at ``layers`` for the target, from one pass (shared with the explainers)."""
        context = make_context(method, *self._arguments(), **self.given(method, layers=list(layers)))
        return shared_cams(
            context, context.settings(CamSettings, method=method, layers=tuple(layers)), [self.target]
        )

    def cam_map(self, method: str, layers: Sequence[str] | None = None) -> np.ndarray:
        """The CAM of ``layers`` (default: the model's), fused as CamLIME fuses them: (H,W) in [0,1]."""
        return self.explain(method, layers=list(layers or self.layers)).map

    def activation(self, method: str) -> np.ndarray:
        """The first default layer's raw map at its own resolution, divided by its maximum (the public scripts'
        'Activation' panel)."""
        raw = next(iter(self.cams(self.layers, method).maps.values()))[0].cpu().numpy()
        return raw / (raw.max() or 1.0)


@dataclass(frozen=True)
class FigureSettings:
    """What one figure is drawn with, besides the image and the model.

    ``method`` is the CAM method of the prior (None: the figure's own default); ``methods`` the rows or panels
    of figures that have them (CAM methods or explainers); ``models`` the zoo models of 'models';
    ``multi_layers`` the layers of multi-layer figures when several were asked for (None: one per feature-map
    size); ``num_features`` superpixels per LIME panel; ``samples`` perturbed samples of 'neighbourhood';
    ``curve_step`` pixels per step of 'deletion-insertion'.
    """

    method: str | None = None
    methods: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    multi_layers: tuple[str, ...] | None = None
    num_features: int = 20
    samples: int = 12
    curve_step: int = 224


@dataclass
class FigureRun:
    """One figure of one image: its settings, the main model's context, and what figures ask of them.

    ``other_model(name)`` gives another zoo model and its default layers for 'models', or raises a
    :class:`~cnnxai.errors.UserInputError` saying how to get its weights; models skipped that way are listed in
    ``skipped`` (name -> reason).
    """

    settings: FigureSettings
    context: FigureContext
    image_key: str
    other_model: Callable[[str], tuple[nn.Module, Sequence[str]]] | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    def multi_layers(self, ctx: FigureContext) -> list[str]:
        """The layers asked for when several were, else one layer per feature-map size, low level first (at most 4)."""
        if self.settings.multi_layers:
            return list(self.settings.multi_layers)
        return block_output_layers(ctx.model, ctx.x)[-4:]

    def context_for_model(self, name: str) -> FigureContext | None:
        """The same image under zoo model ``name``, or None (recorded in ``skipped``) when it cannot be loaded."""
        if name == self.context.model_name:
            return self.context
        if self.other_model is None:
            self.skipped[name] = "no other models in this run"
            return None
        try:
            model, layers = self.other_model(name)
        except UserInputError as error:
            self.skipped[name] = str(error)
            return None
        ctx = self.context
        return FigureContext(model, name, ctx.frame, layers, ctx.options, ctx.class_names, ctx.seed, ctx.batch_size,
                             ctx.requested_target)  # fmt: skip

    def channel_neighbourhood(self, ctx: FigureContext, hidden: np.ndarray) -> Neighbourhood:
        """The image's neighbourhood (same superpixels and draws) with ``hidden`` shown where superpixels are off."""
        explainer = CamLimeExplainer(ctx.classifier, ctx.lime_settings, ctx.batch_size)
        return explainer.sample(ctx.frame, ctx.seed, ctx.neighbourhood.segments, hidden=hidden)
