"""LIME for images with CAM priors: sample a neighbourhood once, fit it with any number of priors and modes."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import torch

from lime_ext.adaptive import fixed_record, ridge_covariance, sample_until_settled
from lime_ext.bayesian import bayesian_ridge, scaled_prior_mean
from lime_ext.engine import HideColor, PerturbationEngine, predict_engines
from lime_ext.explanation import Explanation, LabelExplanation
from lime_ext.legacy import legacy_cam_matrix
from lime_ext.multifidelity import corrected, head_penalty_scale, resolve_proxy
from lime_ext.sampling import DEFAULT_SAMPLING, explanation_rng, sample_binary_masks
from lime_ext.segmentation import segment_image
from lime_ext.settings import DEFAULT_EXACT_SAMPLES, LimeSettings
from lime_ext.surrogate import cosine_distances_to_first, exponential_kernel, fit_surrogate, is_uniform

CAM_MODES = ("feature", "importance", "none", "legacy")
DEFAULT_CAM_MODE = "feature"  # the paper's: ridge on Z diag(a), attribution b = a * w

PriorArg = np.ndarray | torch.Tensor | Mapping[int, np.ndarray | torch.Tensor] | None


def _host_prior(value: np.ndarray | torch.Tensor) -> np.ndarray:
    """A prior (M,) as float64 on the host, from an array, a sequence or a tensor on any device (a CAM-derived
    prior may still be on the GPU; the fit runs on the host)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _per_label(value: PriorArg, label: int) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        if label not in value:
            raise KeyError(f"no prior given for label {label}; priors were given for {sorted(value)}")
        return _host_prior(value[label])
    return _host_prior(value)


@dataclass(frozen=True)
class Neighbourhood:
    """One perturbation set of one image, reusable for any number of fits.

    ``masks`` Z (N,M) uint8 with row 0 all ones; ``predictions`` (N,C) float32 are the classifier's
    outputs on the perturbed images. Sample weights use the cosine distance of each binary row to row 0,
    whatever prior is fitted later (as lime and the public code do).

    With a reduced-precision proxy, ``predictions`` are the proxy's and ``exact`` (n,C) the fp32 outputs of the
    first n samples; every fit is then the corrected one of :func:`lime_ext.multifidelity.corrected`.
    """

    image: np.ndarray
    segments: np.ndarray
    masks: np.ndarray
    predictions: np.ndarray
    kernel_width: float = 0.25
    info: dict = field(default_factory=dict)
    exact: np.ndarray | None = None

    @property
    def num_segments(self) -> int:
        return self.masks.shape[1]

    @cached_property
    def sample_weights(self) -> np.ndarray:
        """Kernel weights (N,) of the samples, computed once per neighbourhood."""
        return exponential_kernel(cosine_distances_to_first(self.masks), self.kernel_width)

    def top_labels(self, k: int) -> list[int]:
        """The k classes with the highest prediction on the unperturbed image, highest first (lime's order)."""
        first = self.predictions[0] if self.exact is None else self.exact[0]
        top = list(np.argsort(first)[-k:])
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
        if self.exact is not None:
            chosen = self.top_labels(int(top_labels or 0)) if labels is None else list(labels)
            if not chosen:
                raise ValueError("give labels or a positive top_labels")
            options = (prior, cam_mode, cam_map, num_features, feature_selection)
            result = self._corrected(
                lambda part, scale: part.fit(chosen, None, *options, ridge_alpha * scale)
            )
            return replace(result, top_labels=chosen if labels is None else [])
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
        if self.exact is not None:
            return self._corrected(
                lambda part, scale: part.fit_bayesian(
                    labels,
                    prior,
                    None if prior_precision is None else prior_precision * scale,
                    noise_precision,
                )
            )
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

    def _parts(self) -> tuple[Neighbourhood, Neighbourhood, Neighbourhood]:
        """(bulk, exact, head) of a corrected neighbourhood: the proxy's N samples, and the first n samples with
        their fp32 and their proxy outputs."""
        n = len(self.exact)
        head = replace(self, masks=self.masks[:n], predictions=self.predictions[:n], exact=None)
        return replace(self, exact=None), replace(head, predictions=self.exact), head

    def _corrected(self, fit: Callable[[Neighbourhood, float], Explanation]) -> Explanation:
        """The corrected fit from ``fit(part, penalty_scale)`` of the three parts. The two fits of the first n
        samples get the penalty scaled by their share of the kernel weight
        (:func:`~lime_ext.multifidelity.head_penalty_scale`), so the correction shrinks as the bulk fit does."""
        bulk, exact, head = self._parts()
        scale = head_penalty_scale(self.sample_weights, len(self.exact))
        return corrected(
            fit(bulk, 1.0), fit(exact, scale), fit(head, scale), head.masks, head.sample_weights,
            exact.predictions, head.predictions, {**self.info.get("proxy", {}), "head_penalty_scale": scale},
        )  # fmt: skip

    def attribution_covariance(
        self, explained: LabelExplanation, cam_mode: str = DEFAULT_CAM_MODE, ridge_alpha: float = 1.0
    ) -> np.ndarray:
        """Covariance (M,M) of the attributions of a fit of this neighbourhood, for the adaptive stopping test
        (:mod:`lime_ext.adaptive`): a Bayesian fit's posterior covariance, else the sandwich (HC3) covariance of
        b = a * w of a ridge fit that uses every superpixel. For a corrected fit, the bulk fit's covariance
        plus that of the correction's fit of the fp32 - proxy difference on the first n samples (their errors
        are nearly independent: the correction fits only the proxy's error)."""
        if explained.covariance is not None:
            return explained.covariance
        if len(explained.ranking) != self.num_segments:
            raise ValueError("the covariance needs a fit that uses every superpixel (num_features >= M)")
        if cam_mode == "legacy":
            raise ValueError("cam_mode 'legacy' has no per-superpixel attributions to test")
        prior = None if cam_mode == "none" else explained.prior
        design, a, _ = self._design(prior, None, cam_mode)
        target = self.predictions[:, explained.label].astype(np.float64)
        if self.exact is None:
            covariance = ridge_covariance(design, target, self.sample_weights, explained.weights, ridge_alpha)
            return covariance * np.outer(a, a)
        n = len(self.exact)
        difference = self.exact[:, explained.label].astype(np.float64) - target[:n]
        covariance = np.zeros((self.num_segments, self.num_segments))
        scale = head_penalty_scale(self.sample_weights, n)
        # the bulk fit's and the correction's (the fp32 - proxy difference on the first n samples)
        for rows, values, alpha in (
            (design, target, ridge_alpha),
            (design[:n], difference, ridge_alpha * scale),
        ):
            weights = self.sample_weights[: len(rows)]
            coef = fit_surrogate(rows, values, weights, feature_selection="none", ridge_alpha=alpha).coef
            covariance += ridge_covariance(rows, values, weights, coef, alpha)
        return covariance * np.outer(a, a)


class NeighbourhoodSampler:
    """The neighbourhood of one image and seed, drawn as far as asked: the first n samples for any n.

    The masks of n samples are the first n rows of any larger draw from the same seed, so growing from n to n'
    predicts only the n' - n new rows: a grid of sample counts costs the forwards of its largest, and adaptive
    sampling (:mod:`lime_ext.adaptive`) pays only for the rounds it runs. ``hidden`` replaces the hide colour by
    an image of its own (see :class:`PerturbationEngine`). ``sampling`` is the mask design ('iid' or 'paired',
    :func:`~lime_ext.sampling.sample_binary_masks`).

    ``proxy`` ('none', 'bf16', 'fp16' or 'auto', :func:`lime_ext.multifidelity.resolve_proxy`; 'auto' decides
    for ``num_samples``) predicts a neighbourhood of N > ``exact_samples`` samples in that precision and its
    first ``exact_samples`` in fp32 too, for the corrected fit; N <= ``exact_samples`` samples are predicted in
    fp32 alone (a correction as large as the fit buys nothing).
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
        sampling: str = DEFAULT_SAMPLING,
        proxy: str = "none",
        exact_samples: int = DEFAULT_EXACT_SAMPLES,
        num_samples: int = 1000,
    ) -> None:
        self.image, self.segments, self.seed = image, segments, int(seed)
        self.sampling, self.exact_samples = sampling, int(exact_samples)
        self.engine = PerturbationEngine(image, segments, classifier, hide_color, batch_size, hidden)
        engine = self.engine
        self.precision, reduced, record = resolve_proxy(
            classifier,
            proxy,
            engine.timing_batch() if proxy == "auto" else None,
            int(num_samples),
            self.exact_samples,
        )
        self.engines = {"fp32": engine}
        if reduced is not None:
            self.engines[self.precision] = PerturbationEngine(
                image, segments, reduced, hide_color, engine.batch_size, hidden
            )
        self.info = {"seed": self.seed, "num_segments": engine.num_segments, "hide_color": hide_color,
                     "batch_size": engine.batch_size, "device": str(engine.device), "sampling": sampling,
                     **(info or {})}  # fmt: skip
        if proxy != "none":
            self.info["proxy"] = {"requested": proxy, "precision": self.precision, **record}
        self._outputs: dict[str, np.ndarray] = {}

    @property
    def forwards(self) -> dict[str, int]:
        """The model's forwards on perturbed images so far, per precision ('fp32', and the proxy's)."""
        return {key: len(rows) for key, rows in self._outputs.items()}

    @property
    def predicted(self) -> int:
        """Forwards on perturbed images so far, every precision counted."""
        return sum(self.forwards.values())

    def masks(self, num_samples: int) -> np.ndarray:
        """Z (N,M) of the first ``num_samples`` samples (row 0 all ones)."""
        rng = explanation_rng(self.seed, self.image)
        return sample_binary_masks(int(num_samples), self.engine.num_segments, rng, self.sampling)

    def plan(self, num_samples: int) -> dict[str, int]:
        """Forwards per precision that a neighbourhood of ``num_samples`` samples needs (what it costs alone)."""
        if len(self.engines) == 1 or num_samples <= self.exact_samples:
            return {"fp32": num_samples}
        return {self.precision: num_samples, "fp32": self.exact_samples}

    def _missing(self, num_samples: int) -> list[tuple[str, int, int]]:
        """(precision, first row, end row) of each precision's rows still to predict."""
        plan = self.plan(int(num_samples))
        return [
            (key, self.forwards.get(key, 0), rows)
            for key, rows in plan.items()
            if rows > self.forwards.get(key, 0)
        ]

    def _extend(self, key: str, predictions: np.ndarray) -> None:
        done = self._outputs.get(key)
        self._outputs[key] = predictions if done is None else np.concatenate([done, predictions])

    def neighbourhood(
        self, num_samples: int, kernel_width: float = 0.25, progress: bool = False
    ) -> Neighbourhood:
        """The neighbourhood of the first ``num_samples`` samples, predicting the rows not predicted yet."""
        masks = self.masks(num_samples)
        start = time.perf_counter()
        for key, first, end in self._missing(num_samples):
            self._extend(key, self.engines[key].predict(masks[first:end], progress=progress))
        timings = {"predict_s": time.perf_counter() - start}
        plan = self.plan(int(num_samples))
        info = {**self.info, "num_samples": int(num_samples), "timings": timings}
        exact = None
        if len(plan) > 1:
            exact = self._outputs["fp32"][: self.exact_samples]
            info["proxy"] = {**info["proxy"], "proxy_samples": int(num_samples), "exact_samples": len(exact)}
        bulk = self._outputs[next(iter(plan))][:num_samples]
        return Neighbourhood(self.image, self.segments, masks, bulk, kernel_width, info, exact)


def predict_together(
    samplers: Sequence[NeighbourhoodSampler], num_samples: int, progress: bool = False
) -> None:
    """Predict the first ``num_samples`` samples of several images' samplers in one stream of forwards per
    precision (:func:`~lime_ext.engine.predict_engines`), so that their ``neighbourhood(num_samples)`` runs no
    forward. The samplers must share one classifier's model, device, image size and proxy."""
    groups: dict[str, list[tuple[NeighbourhoodSampler, np.ndarray]]] = {}
    for sampler in samplers:
        missing = sampler._missing(num_samples)
        masks = sampler.masks(num_samples) if missing else None
        for key, first, end in missing:
            groups.setdefault(key, []).append((sampler, masks[first:end]))
    for key, pending in groups.items():
        predictions = predict_engines(
            [sampler.engines[key] for sampler, _ in pending], [rows for _, rows in pending], progress
        )
        for (sampler, _), predicted in zip(pending, predictions, strict=True):
            sampler._extend(key, predicted)


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
        settings = self.settings
        return NeighbourhoodSampler(
            image, segments, self.classifier, seed, settings.hide_color, self.batch_size, hidden, info,
            settings.sampling, settings.proxy, settings.exact_samples,
            settings.max_samples if settings.adaptive else int(settings.num_samples),
        )  # fmt: skip

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
    covariance). The explanation's ``info['samples']`` says how many samples it used, the forwards per precision
    they cost, the proxy's record (precision, counts, measured rho) when one was used and, when adaptive, the
    rounds."""
    width = settings.kernel_width
    if not settings.adaptive:
        neighbourhood = sampler.neighbourhood(int(settings.num_samples), width, progress)
        explanation = fit(neighbourhood)
        explanation.info["samples"] = _record(fixed_record(settings.num_samples), sampler, explanation)
        return neighbourhood, explanation

    def at(n: int):
        neighbourhood = sampler.neighbourhood(n, width, progress)
        explanation = fit(neighbourhood)
        explained = explanation._label(None)
        covariance = neighbourhood.attribution_covariance(explained, cam_mode, ridge_alpha)
        return (neighbourhood, explanation), explained.attributions, covariance

    settled = sample_until_settled(at, settings.top_k, settings.max_samples)
    neighbourhood, explanation = settled.result
    explanation.info["samples"] = _record(settled.record, sampler, explanation)
    return neighbourhood, explanation


def _record(record: dict, sampler: NeighbourhoodSampler, explanation: Explanation) -> dict:
    """The manifest's record of the samples: ``record`` plus the forwards per precision and any proxy record."""
    proxy = {"proxy": explanation.info["proxy"]} if "proxy" in explanation.info else {}
    return {**record, "forwards": sampler.plan(record["samples"]), **proxy}
