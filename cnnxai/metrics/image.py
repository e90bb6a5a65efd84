"""Everything the metrics of one image share, computed once and reused for every explainer scored on it.

The unperturbed prediction, IROF's superpixels, the insertion substrate and every random draw depend on the
image alone, so comparisons between explainers on one image are paired: they are scored on the same random
subsets, fills and segments. Random draws come from the run's seed, the image's key and the metric's name,
never from a global generator, so a resumed or sharded run draws exactly what an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnxai.errors import UserInputError
from cnnxai.metrics.perturbation import FeatureView, TargetScorer
from cnnxai.metrics.result import MetricResult, undefined
from cnnxai.metrics.specs import METRICS, check_sizes
from cnnxai.session import ImageSession
from cnnxai.system import tune_malloc


def normalise_by_max(attribution: np.ndarray) -> np.ndarray:
    """a / max|a| in float32 (Quantus's ``normalise_by_max`` for one image); an all-zero map is left as it is."""
    a = np.asarray(attribution, dtype=np.float32)
    if np.all(a == 0):
        return a
    return np.divide(a, np.max(np.abs(a)))


def stream(seed: int, *names: str) -> np.random.Generator:
    """A generator for one purpose, derived from the seed and names (an image key, a metric)."""
    key = [int(seed)] + [zlib.crc32(name.encode()) for name in names]
    return np.random.default_rng(np.random.SeedSequence(key))


class ImageMetrics:
    """The metrics of one image: build it once, then :meth:`score` each explainer's (H,W) map.

    Args:
        model: the classifier, fed normalised inputs.
        x: the normalised model input (C,H,W) or (1,C,H,W), on the model's device.
        target: the class whose scores the metrics follow; None: the predicted class.
        settings: metric name -> parameters (see :func:`cnnxai.metrics.specs.resolve_settings`).
        seed, key: the run's seed and the image's stable key; every random draw derives from both.
        feature_unit: 'pixel' or 'element' (see :mod:`cnnxai.metrics.perturbation`).
        batch_size: inputs per forward pass (None: chosen from the device).
        draws: replacements for random draws, by name (e.g. 'FaithfulnessCorrelation.subsets'); tests and
            the benchmark pass the draws Quantus made, to compare values one for one.
        tf32: allow TF32 convolutions on CUDA (see :func:`lime_ext.full_float32`).
        session: the image's :class:`~cnnxai.session.ImageSession` when the caller has one (see :meth:`of`): its
            one forward gives the prediction (without one, the metrics' scorer runs it), and the metrics' own
            per-image results (IROF's superpixels, the insertion substrate) go to its ``memo``.

    The target's logit and probability (written out by the metrics) are the model's output on ``x`` and its
    softmax, in float32: a session with ``amp`` cannot serve them.
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        target: int | None,
        settings: Mapping[str, Mapping[str, Any]],
        seed: int = 0,
        key: str = "",
        feature_unit: str = "pixel",
        batch_size: int | None = None,
        draws: Mapping[str, np.ndarray] | None = None,
        tf32: bool = False,
        session: ImageSession | None = None,
    ) -> None:
        tune_malloc()  # a library entry point (see cnnxai.system)
        self.x = (x[0] if x.ndim == 4 else x).detach()
        if self.x.ndim != 3:
            raise ValueError(f"x must be (C,H,W) or (1,C,H,W), got {tuple(x.shape)}")
        self.settings = {name: dict(params) for name, params in settings.items()}
        check_sizes(self.settings, tuple(self.x.shape), feature_unit)
        self.seed, self.key = int(seed), str(key)
        self.view = FeatureView(self.x, feature_unit)
        self.pixels = FeatureView(self.x, "pixel")
        self.scorer = TargetScorer(
            model, 0 if target is None else target, batch_size, tf32, tuple(x.shape[-2:])
        )
        self._draws = dict(draws or {})
        # per-image results of the metrics' own (e.g. IROF's superpixels), kept in the image's session if any
        self.cache: dict[Any, Any] = {} if session is None else session.memo
        if session is None:
            output = self.scorer.outputs(self.x[None])[0].float()
        elif session.model is not model or session.amp or session.tf32 != bool(tf32) or (
            session.classifier.backend != self.scorer.classifier.backend
        ):
            raise ValueError("the session is of another model, or predicts in other numerics than the metrics "
                             "(amp, tf32, backend): make the metrics with ImageMetrics.of(session)")
        else:
            output = session.output[0].float()
        self.predicted = int(output.argmax())
        if target is None:
            self.scorer.target = self.predicted
        self.target = self.scorer.target
        if not 0 <= self.target < len(output):
            raise UserInputError(
                f"target class {self.target} is out of range: the model has {len(output)} classes"
            )
        self.logit = float(output[self.target])
        self.probability = float(torch.softmax(output, dim=-1)[self.target])

    @classmethod
    def of(
        cls,
        session: ImageSession,
        target: int | None,
        settings: Mapping[str, Mapping[str, Any]],
        **options: Any,
    ) -> ImageMetrics:
        """The metrics of the session's image on the session's model (its input ``x``, its one forward, its memo,
        its ``tf32``); ``options`` are the constructor's other keywords (``seed``, ``key``, ``feature_unit``,
        ``batch_size``, ``draws``)."""
        return cls(session.model, session.x, target, settings, session=session, tf32=session.tf32, **options)

    # -- shared, computed once per image ------------------------------------------------------------------

    def draw(self, name: str, make: Callable[[np.random.Generator], np.ndarray]) -> np.ndarray:
        """The random draw ``name`` ('Metric.what'): a given replacement, or ``make`` on its own stream (cached)."""
        if name not in self._draws:
            self._draws[name] = make(stream(self.seed, self.key, name))
        return self._draws[name]

    @cached_property
    def value_range(self) -> tuple[float, float]:
        return float(self.x.min()), float(self.x.max())

    def fills(self, baseline: str, count: int, name: str) -> torch.Tensor:
        """One fill value per perturbed copy (count,) for a baseline of :data:`~cnnxai.metrics.specs.BASELINES`."""
        low, high = self.value_range
        if baseline == "uniform":
            values = self.draw(name, lambda rng: rng.uniform(low, high, size=count))
            values = np.asarray(values, dtype=np.float64).reshape(-1)
            if len(values) != count:
                raise ValueError(f"draw {name} has {len(values)} values, {count} are needed")
        else:
            constant = {"black": low, "white": high, "mean": float(self.x.mean()), "zeros": 0.0}[baseline]
            values = np.full(count, constant)
        return torch.as_tensor(values, dtype=self.x.dtype, device=self.x.device)

    # -- scoring ------------------------------------------------------------------------------------------

    def score(self, attribution: np.ndarray, metrics: Sequence[str]) -> dict[str, MetricResult]:
        """Every per-image metric in ``metrics`` for one map (H,W), by its registered function, with this image's
        shared state. Skipped: Sufficiency (scored over groups, see :func:`~cnnxai.metrics.faithfulness.sufficiency`)
        and the localisation metrics (scored against a mask, see
        :func:`~cnnxai.metrics.localisation.localisation_scores`).
        """
        attribution = np.asarray(attribution)
        if attribution.shape != tuple(self.x.shape[1:]):
            raise ValueError(f"the map is {attribution.shape}, the input {tuple(self.x.shape[1:])}")
        results = {}
        for name in metrics:
            spec = METRICS[name]
            if spec.batch_level or spec.family == "localisation":
                continue
            if not np.all(np.isfinite(attribution)):
                results[name] = undefined("the map has non-finite values (NaN or inf)")
                continue
            start = time.perf_counter()
            result = spec.fn(self, attribution, self.settings[name])
            results[name] = dataclasses.replace(result, seconds=time.perf_counter() - start)
        return results
