"""LIME for images with CAM priors: sample a neighbourhood once, fit it with any number of priors and modes."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from lime_ext.adaptive import fixed_record, ridge_covariance, sample_until_settled
from lime_ext.bayesian import bayesian_ridge, scaled_prior_mean
from lime_ext.engine import HideColor, PerturbationEngine, predict_engines
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

    def _check_prior(self, prior: np.ndarray | None) -> None:
        """A prior is None or (M,), finite and non-negative."""
        num = self.num_segments
        if prior is not None and prior.shape != (num,):
            raise ValueError(f"prior has shape {prior.shape}; this neighbourhood has {num} superpixels")
        if prior is not None and (not np.all(np.isfinite(prior)) or np.any(prior < 0)):
            raise ValueError("a prior must be finite and non-negative")

    def _design(self, prior, cam_map, cam_mode) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(design (N,M), a (M,), selection scale or None) of one fit: Z diag(a) ('feature'), Z with ranking
        scaled by a ('importance'), the (N,M) CAM matrix ('legacy') or Z."""
        z = self.masks.astype(np.float64)
        self._check_prior(prior)
        a = np.ones(self.num_segments) if (cam_mode == "none" or prior is None) else prior
        if cam_mode == "feature":
            return z * a, a, None
        if cam_mode == "importance":
            return z, a, a
        if cam_mode == "legacy":
            if cam_map is None:
                raise ValueError("cam_mode='legacy' needs cam_map (the CAM map itself, not the prior)")
            matrix = legacy_cam_matrix(cam_map, *z.shape)
            return np.round(z * matrix, 4), matrix.mean(axis=0), None
        return z, a, None

    def _fit_label(
        self, label, prior, cam_map, cam_mode, num_features, feature_selection, ridge_alpha
    ) -> LabelExplanation:
        target = self.predictions[:, label].astype(np.float64)
        design, a, scale = self._design(prior, cam_map, cam_mode)
        selection = feature_selection
        if cam_mode in ("feature", "importance") and feature_selection == "auto" and not is_uniform(a):
            selection = "highest_weights"
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

    def fit_bayesian(
        self,
        labels: Sequence[int],
        prior: PriorArg = None,
        prior_precision: float | None = None,
        noise_precision: float | None = None,
    ) -> Explanation:
        """BayLIME's surrogate for each label: the posterior mean of a weighted Bayesian ridge on Z
        (:func:`lime_ext.bayesian.bayesian_ridge`), attributions = posterior mean.

        Without ``prior`` the prior mean is 0 (BayLIME's non-informative prior; precisions left as None are
        estimated by evidence maximisation, as scikit-learn's ``BayesianRidge``). With a per-superpixel
        ``prior`` a (M,) (e.g. the per-superpixel Grad-CAM mean), the prior mean is a scaled to the coefficients'
        units, mu0 = a * max|m0| / max(a) (BayLIME's ``get_posterior``), m0 the posterior mean of the
        non-informative fit (both precisions estimated, so mu0 does not shrink with a large fixed lambda, as it
        would if m0 were fitted with that lambda); the fit is then done with mean mu0 and the given precisions.
        """
        weights = self.sample_weights
        z = self.masks.astype(np.float64)
        explained: dict[int, LabelExplanation] = {}
        record: dict[int, dict] = {}
        for label in labels:
            label = int(label)
            target = self.predictions[:, label].astype(np.float64)
            a = _per_label(prior, label)
            self._check_prior(a)
            if a is None:
                fit = bayesian_ridge(z, target, weights, None, prior_precision, noise_precision)
            else:
                scale = bayesian_ridge(z, target, weights)  # non-informative: the coefficients' units
                mean = scaled_prior_mean(a, scale.coef)
                fit = bayesian_ridge(z, target, weights, mean, prior_precision, noise_precision)
            ranking = np.argsort(-np.abs(fit.coef), kind="stable")
            explained[label] = LabelExplanation(
                label, fit.coef, fit.coef.copy(), np.ones(self.num_segments) if a is None else a, fit.intercept,
                fit.score, fit.local_pred, ranking.astype(np.int64), fit.covariance,
            )  # fmt: skip
            record[label] = {"noise_precision": fit.alpha, "prior_precision": fit.lambda_,
                             "prior_mean_scale": float(np.max(np.abs(fit.prior_mean)))}  # fmt: skip
        return Explanation(
            self.image, self.segments, "bayesian", explained, self.predictions[0].copy(),
            info={**self.info, "bayesian": record},
        )  # fmt: skip

    def attribution_covariance(
        self, explained: LabelExplanation, cam_mode: str = DEFAULT_CAM_MODE, ridge_alpha: float = 1.0
    ) -> np.ndarray:
        """Covariance (M,M) of the attributions of a fit of this neighbourhood, for the adaptive stopping test
        (:mod:`lime_ext.adaptive`): a Bayesian fit's posterior covariance, else the sandwich covariance of
        b = a * w of a ridge fit that uses every superpixel."""
        if explained.covariance is not None:
            return explained.covariance
        if len(explained.ranking) != self.num_segments:
            raise ValueError("the covariance needs a fit that uses every superpixel (num_features >= M)")
        if cam_mode == "legacy":
            raise ValueError("cam_mode 'legacy' has no per-superpixel attributions to test")
        prior = None if cam_mode == "none" else explained.prior
        design, a, _ = self._design(prior, None, cam_mode)
        target = self.predictions[:, explained.label].astype(np.float64)
        covariance = ridge_covariance(design, target, self.sample_weights, explained.weights, ridge_alpha)
        return covariance * np.outer(a, a)


class NeighbourhoodSampler:
    """The neighbourhood of one image and seed, drawn as far as asked: the first n samples for any n.

    The masks of n samples are the first n rows of any larger draw from the same seed, so growing from n to n'
    predicts only the n' - n new rows: a grid of sample counts costs the forwards of its largest, and adaptive
    sampling (:mod:`lime_ext.adaptive`) pays only for the rounds it runs. ``hidden`` replaces the hide colour by
    an image of its own (see :class:`PerturbationEngine`).
    """

    def __init__(
        self,
        image: np.ndarray,
        segments: np.ndarray,
        classifier,
        seed: int = 0,
        hide_color: HideColor = 0,
        batch_size: int | None = None,
        hidden: np.ndarray | None = None,
        info: dict | None = None,
    ) -> None:
        self.image, self.segments, self.seed = image, segments, int(seed)
        self.engine = PerturbationEngine(image, segments, classifier, hide_color, batch_size, hidden)
        self.info = {"seed": self.seed, "num_segments": self.engine.num_segments, "hide_color": hide_color,
                     "batch_size": self.engine.batch_size, "device": str(self.engine.device), **(info or {})}  # fmt: skip
        self._predictions: np.ndarray | None = None

    @property
    def predicted(self) -> int:
        """Samples predicted so far (the model's forwards on perturbed images)."""
        return 0 if self._predictions is None else len(self._predictions)

    def masks(self, num_samples: int) -> np.ndarray:
        """Z (N,M) of the first ``num_samples`` samples (row 0 all ones)."""
        rng = explanation_rng(self.seed, self.image)
        return sample_binary_masks(int(num_samples), self.engine.num_segments, rng)

    def _extend(self, predictions: np.ndarray) -> None:
        self._predictions = (
            predictions if self._predictions is None else np.concatenate([self._predictions, predictions])
        )

    def neighbourhood(
        self, num_samples: int, kernel_width: float = 0.25, progress: bool = False
    ) -> Neighbourhood:
        """The neighbourhood of the first ``num_samples`` samples, predicting the rows not predicted yet."""
        masks = self.masks(num_samples)
        start = time.perf_counter()
        done = self.predicted
        if num_samples > done:
            self._extend(self.engine.predict(masks[done:], progress=progress))
        timings = {"predict_s": time.perf_counter() - start}
        info = {**self.info, "num_samples": int(num_samples), "timings": timings}
        return Neighbourhood(
            self.image, self.segments, masks, self._predictions[:num_samples], kernel_width, info
        )


def predict_together(
    samplers: Sequence[NeighbourhoodSampler], num_samples: int, progress: bool = False
) -> None:
    """Predict the first ``num_samples`` samples of several images' samplers in one stream of forwards
    (:func:`~lime_ext.engine.predict_engines`), so that their ``neighbourhood(num_samples)`` runs no forward.
    The samplers must share one classifier's model, device and image size."""
    pending = [sampler for sampler in samplers if sampler.predicted < num_samples]
    if not pending:
        return
    masks = [sampler.masks(num_samples)[sampler.predicted :] for sampler in pending]
    predictions = predict_engines([sampler.engine for sampler in pending], masks, progress)
    for sampler, predicted in zip(pending, predictions, strict=True):
        sampler._extend(predicted)


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

    def sampler(
        self,
        image: np.ndarray,
        seed: int = 0,
        segments: np.ndarray | None = None,
        hidden: np.ndarray | None = None,
    ) -> NeighbourhoodSampler:
        """The lazily drawn neighbourhood of ``image`` (RGB uint8 (H,W,3), model-input frame) for ``seed``,
        segmenting the image unless ``segments`` are given."""
        start = time.perf_counter()
        if segments is None:
            segments = self.segment(image, seed)
        info = {"segmenter": self.settings.segmenter, "segmenter_params": self.segmenter_params,
                "segmentation_s": time.perf_counter() - start}  # fmt: skip
        return NeighbourhoodSampler(
            image, segments, self.classifier, seed, self.settings.hide_color, self.batch_size, hidden, info
        )

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
        if self.settings.adaptive:
            raise ValueError("num_samples='auto' needs a fit to test: use explain(), or sampler() with "
                             "lime_ext.adaptive.sample_until_settled")  # fmt: skip
        sampler = self.sampler(image, seed, segments, hidden)
        return sampler.neighbourhood(self.settings.num_samples, self.settings.kernel_width, progress)

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
        """``sample`` then ``fit`` in one call (see :meth:`Neighbourhood.fit` for the fit options). With
        ``num_samples='auto'`` the samples grow until the first label's top-k is settled (see :func:`fit_samples`)."""
        sampler = self.sampler(image, seed, segments)
        _, explanation = fit_samples(
            sampler, self.settings, lambda nb: nb.fit(prior=prior, cam_mode=cam_mode, **fit_options),
            cam_mode, fit_options.get("ridge_alpha", 1.0), progress,
        )  # fmt: skip
        return explanation


def fit_samples(
    sampler: NeighbourhoodSampler,
    settings: LimeSettings,
    fit: Callable[[Neighbourhood], Explanation],
    cam_mode: str = DEFAULT_CAM_MODE,
    ridge_alpha: float = 1.0,
    progress: bool = False,
) -> tuple[Neighbourhood, Explanation]:
    """``fit`` on ``settings.num_samples`` samples of ``sampler``, or with ``num_samples='auto'`` on samples grown
    round by round until the top ``settings.top_k`` attributions of the explanation's first label are settled
    (:mod:`lime_ext.adaptive`; ``cam_mode`` and ``ridge_alpha`` must be those of ``fit``, for the test's
    covariance). The explanation's ``info['samples']`` says how many samples it used and, when adaptive, the
    rounds."""
    width = settings.kernel_width
    if not settings.adaptive:
        neighbourhood = sampler.neighbourhood(int(settings.num_samples), width, progress)
        explanation = fit(neighbourhood)
        explanation.info["samples"] = fixed_record(settings.num_samples)
        return neighbourhood, explanation

    def at(n: int):
        neighbourhood = sampler.neighbourhood(n, width, progress)
        explanation = fit(neighbourhood)
        explained = explanation._label(None)
        covariance = neighbourhood.attribution_covariance(explained, cam_mode, ridge_alpha)
        return (neighbourhood, explanation), explained.attributions, covariance

    settled = sample_until_settled(at, settings.top_k, settings.max_samples)
    neighbourhood, explanation = settled.result
    explanation.info["samples"] = settled.record
    return neighbourhood, explanation
