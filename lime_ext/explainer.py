"""LIME for images with CAM priors: sample a neighbourhood once, fit it with any number of priors and modes."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from lime_ext.engine import PerturbationEngine
from lime_ext.explanation import Explanation, LabelExplanation
from lime_ext.legacy import legacy_cam_matrix
from lime_ext.sampling import explanation_rng, sample_binary_masks
from lime_ext.segmentation import segment_image
from lime_ext.settings import LimeSettings
from lime_ext.surrogate import cosine_distances_to_first, exponential_kernel, fit_surrogate, is_uniform

CAM_MODES = ("feature", "importance", "none", "legacy")
DEFAULT_CAM_MODE = "feature"  # the paper's: ridge on Z diag(a), attribution b = a * w

PriorArg = np.ndarray | Mapping[int, np.ndarray] | None


def _per_label(value: PriorArg, label: int) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        if label not in value:
            raise KeyError(f"no prior given for label {label}; priors were given for {sorted(value)}")
        return np.asarray(value[label], dtype=np.float64)
    return np.asarray(value, dtype=np.float64)


@dataclass(frozen=True)
class Neighbourhood:
    """One perturbation set of one image, reusable for any number of fits.

    ``masks`` Z (N,M) uint8 with row 0 all ones; ``predictions`` (N,C) float32 are the classifier's
    outputs on the perturbed images. Sample weights use the cosine distance of each binary row to row 0,
    whatever prior is fitted later (as lime and the public code do).
    """

    image: np.ndarray
    segments: np.ndarray
    masks: np.ndarray
    predictions: np.ndarray
    kernel_width: float = 0.25
    info: dict = field(default_factory=dict)

    @property
    def num_segments(self) -> int:
        return self.masks.shape[1]

    @cached_property
    def sample_weights(self) -> np.ndarray:
        """Kernel weights (N,) of the samples, computed once per neighbourhood."""
        return exponential_kernel(cosine_distances_to_first(self.masks), self.kernel_width)

    def top_labels(self, k: int) -> list[int]:
        """The k classes with the highest prediction on the unperturbed image, highest first (lime's order)."""
        top = list(np.argsort(self.predictions[0])[-k:])
        top.reverse()
        return [int(t) for t in top]

    def fit(
        self,
        labels: Sequence[int] | None = None,
        top_labels: int | None = 1,
        prior: PriorArg = None,
        cam_mode: str = DEFAULT_CAM_MODE,
        cam_map: PriorArg = None,
        num_features: int = 100000,
        feature_selection: str = "auto",
        ridge_alpha: float = 1.0,
    ) -> Explanation:
        """Fit the surrogate for each label.

        Args:
            labels: classes to explain; if None, the ``top_labels`` best predicted classes.
            prior: the prior a (M,) of each superpixel (e.g. :func:`cam_ext.priors.segment_prior` of a CAM),
                or one per label.
                None means uniform (plain LIME).
            cam_mode: 'feature' (default; ridge on Z diag(a), attribution b = a * w), 'importance' (ridge
                on Z, ranking and attribution by a * w), 'none' (plain LIME, prior ignored) or 'legacy'
                (the public code's (N,M) CAM resize, a known bug kept to compare with published numbers;
                needs ``cam_map``).
            cam_map: the CAM map (h,w) (or one per label), used only by 'legacy'.
            num_features, feature_selection: lime's meaning. With a non-uniform prior in 'feature' or
                'importance' mode, 'auto' means 'highest_weights', so the prior is never dropped by forward
                selection (as GradLIME v2 does).
            ridge_alpha: the Ridge penalty of the final fit (lime: 1).
        """
        if cam_mode not in CAM_MODES:
            raise ValueError(f"unknown cam_mode {cam_mode!r}; choose one of {', '.join(CAM_MODES)}")
        if labels is None:
            if not top_labels:
                raise ValueError("give labels or a positive top_labels")
            labels = self.top_labels(int(top_labels))
            ordered_top = list(labels)
        else:
            ordered_top = []
        num_classes = self.predictions.shape[1]
        explained: dict[int, LabelExplanation] = {}
        for label in labels:
            label = int(label)
            if not 0 <= label < num_classes:
                raise ValueError(f"label {label} is out of range: the classifier has {num_classes} classes")
            explained[label] = self._fit_label(
                label,
                _per_label(prior, label),
                _per_label(cam_map, label),
                cam_mode,
                num_features,
                feature_selection,
                ridge_alpha,
            )
        return Explanation(
            image=self.image,
            segments=self.segments,
            cam_mode=cam_mode,
            labels=explained,
            predictions=self.predictions[0].copy(),
            top_labels=ordered_top,
            info={
                **self.info,
                "num_features": num_features,
                "feature_selection": feature_selection,
                "ridge_alpha": ridge_alpha,
            },
        )

    def _fit_label(
        self, label, prior, cam_map, cam_mode, num_features, feature_selection, ridge_alpha
    ) -> LabelExplanation:
        z = self.masks.astype(np.float64)
        target = self.predictions[:, label].astype(np.float64)
        num = self.num_segments
        if prior is not None and prior.shape != (num,):
            raise ValueError(f"prior has shape {prior.shape}; this neighbourhood has {num} superpixels")
        if prior is not None and (not np.all(np.isfinite(prior)) or np.any(prior < 0)):
            raise ValueError("a prior must be finite and non-negative")
        a = np.ones(num) if (cam_mode == "none" or prior is None) else prior
        selection = feature_selection
        if cam_mode in ("feature", "importance") and feature_selection == "auto" and not is_uniform(a):
            selection = "highest_weights"
        scale = None
        if cam_mode == "feature":
            design = z * a
        elif cam_mode == "importance":
            design, scale = z, a
        elif cam_mode == "legacy":
            if cam_map is None:
                raise ValueError("cam_mode='legacy' needs cam_map (the CAM map itself, not the prior)")
            matrix = legacy_cam_matrix(cam_map, *z.shape)
            design, a = np.round(z * matrix, 4), matrix.mean(axis=0)
        else:
            design = z
        fit = fit_surrogate(design, target, self.sample_weights, num_features, selection, ridge_alpha, scale)
        uses_prior = cam_mode in ("feature", "importance")
        attributions = a * fit.coef if uses_prior else fit.coef.copy()
        ranked = sorted(
            zip(fit.used, attributions[fit.used], strict=True), key=lambda x: np.abs(x[1]), reverse=True
        )
        return LabelExplanation(
            label=label,
            weights=fit.coef,
            attributions=attributions,
            prior=np.asarray(a, dtype=np.float64),
            intercept=fit.intercept,
            score=fit.score,
            local_pred=fit.local_pred,
            ranking=np.array([int(j) for j, _ in ranked], dtype=np.int64),
        )


class CamLimeExplainer:
    """Samples LIME neighbourhoods of images for one classifier.

    Args:
        classifier: a :class:`~lime_ext.classifier.TorchClassifier` (or compatible) on its device.
        settings: the neighbourhood's settings (see :class:`~lime_ext.settings.LimeSettings`).
        batch_size: images per forward pass (None: chosen from the device).
        segmenter_params: overrides of the segmenter's default parameters.
    """

    def __init__(
        self,
        classifier,
        settings: LimeSettings | None = None,
        batch_size: int | None = None,
        segmenter_params: dict[str, Any] | None = None,
    ) -> None:
        self.classifier = classifier
        self.settings = settings or LimeSettings()
        self.batch_size = batch_size
        self.segmenter_params = dict(segmenter_params or {})

    def segment(self, image: np.ndarray, seed: int = 0) -> np.ndarray:
        return segment_image(image, self.settings.segmenter, seed=seed, **self.segmenter_params)

    def sample(
        self,
        image: np.ndarray,
        seed: int = 0,
        segments: np.ndarray | None = None,
        progress: bool = False,
        hidden: np.ndarray | None = None,
    ) -> Neighbourhood:
        """Segment ``image`` (RGB uint8 (H,W,3), model-input frame) unless ``segments`` are given, draw Z from
        the seed and predict every perturbed image. Same seed and inputs: identical neighbourhood.
        ``hidden`` replaces the hide colour by an image of its own (see :class:`PerturbationEngine`)."""
        settings = self.settings
        timings: dict[str, float] = {}
        start = time.perf_counter()
        if segments is None:
            segments = self.segment(image, seed)
        timings["segmentation_s"] = time.perf_counter() - start
        engine = PerturbationEngine(
            image, segments, self.classifier, settings.hide_color, self.batch_size, hidden
        )
        rng = explanation_rng(seed, image)
        masks = sample_binary_masks(settings.num_samples, engine.num_segments, rng)
        start = time.perf_counter()
        predictions = engine.predict(masks, progress=progress)
        timings["predict_s"] = time.perf_counter() - start
        info = {
            "seed": seed,
            "num_samples": settings.num_samples,
            "num_segments": engine.num_segments,
            "segmenter": settings.segmenter,
            "segmenter_params": self.segmenter_params,
            "hide_color": settings.hide_color,
            "batch_size": engine.batch_size,
            "device": str(engine.device),
            "timings": timings,
        }
        return Neighbourhood(image, segments, masks, predictions, settings.kernel_width, info)

    def explain(
        self,
        image: np.ndarray,
        prior: PriorArg = None,
        cam_mode: str = DEFAULT_CAM_MODE,
        seed: int = 0,
        segments: np.ndarray | None = None,
        progress: bool = False,
        **fit_options: Any,
    ) -> Explanation:
        """``sample`` then ``fit`` in one call (see :meth:`Neighbourhood.fit` for the fit options)."""
        neighbourhood = self.sample(image, seed, segments, progress)
        return neighbourhood.fit(prior=prior, cam_mode=cam_mode, **fit_options)
