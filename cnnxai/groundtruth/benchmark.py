"""The localisation benchmark: every explainer on test images of the synthetic set, scored against the masks.

The unit of work is one test image (for a task, one scene: every case of it) with every method, so that LIME,
GradLIME, CamLIME and KernelSHAP fit the same perturbations; nothing about a unit depends on which units ran
before it. :func:`localise` hands the units over in the order of the run, however they were computed.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from cnnxai.benchmark.runner import postprocess
from cnnxai.devices import recover_from
from cnnxai.distributed import LocalPool, WorkFailed, in_order
from cnnxai.explainers import REGISTRY, explain
from cnnxai.metrics import LOCALISATION_METRICS, localisation_scores, metric_settings
from cnnxai.session import ImageSession
from cnnxai.synthetic.shapes import CLASSES, SyntheticSet
from lime_ext import TorchClassifier, forward_batches

# Every registered explainer except NormLIME's two variants, whose global weights need a fit of their own on a
# reference image folder of the model's images (Localisation.py refuses them).
EXCLUDED_BY_DEFAULT = ("normlime", "normlime_logreg")
SCORE_COLUMNS = ("image", "label", "predicted", "method", "metric", "value", "seconds", "note")
# The notes of a NaN score that are not an explainer's failure.
NO_RELEVANCE, UNDEFINED = "no positive relevance", "undefined"


# The applications' table: ours against LIME, the CAMs of both priors, RISE (D-RISE on a box) and occlusion.
TASK_METHODS = ("gradlime", "camlime", "lime", "gradcam", "gradcamelementwise", "rise", "occlusion")


def default_methods(task: str = "classification") -> list[str]:
    """The explainers a localisation run scores by default: every one but NormLIME's two, or for a task
    (detection, segmentation) TASK_METHODS."""
    if task != "classification":
        return list(TASK_METHODS)
    return [name for name in REGISTRY if name not in EXCLUDED_BY_DEFAULT]


@dataclass
class LocalisationResult:
    """``rows``: one per image x method x metric (``SCORE_COLUMNS``); ``maps[method]`` (N,H,W) float32 as
    scored (after post-processing); ``seconds[method]`` total explaining time; ``failures[method]`` reasons."""

    rows: list[dict] = field(default_factory=list)
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    predicted: np.ndarray | None = None


def predictions(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's classes for RGB uint8 images (N,H,W,3): int64 (N,)."""
    classifier = TorchClassifier(model)

    def build(start: int, stop: int) -> torch.Tensor:
        return torch.stack([classifier.prepare_rgb(image) for image in images[start:stop]])

    out = [batch.argmax(1) for _, _, batch in forward_batches(classifier, len(images), build, batch_size)]
    return torch.cat(out).cpu().numpy()  # one copy to the host, after the last batch


class LocaliseWork:
    """Explains the cases of one unit (their places in the set) with every method and scores the maps against
    their masks: the work of a localisation run, in this process or in a Ray worker (:mod:`cnnxai.distributed`).

    ``compute(cases)`` yields one list: an :class:`ImageScores` per case. One
    :class:`~cnnxai.session.ImageSession` per case, so LIME, GradLIME, CamLIME and KernelSHAP fit the same
    perturbations. The arguments are :func:`run_localisation`'s; ``predicted`` (N,) the classes recorded in the rows.
    """

    def __init__(
        self, model: nn.Module, dataset: SyntheticSet, methods: Sequence[str],
        options: Mapping[str, Mapping[str, Any]], predicted: np.ndarray, seed: int = 0, attribution: str = "positive",
        top_k: int | None = None, tolerance: int | None = None, batch_size: int | None = None, debug: bool = False,
        case_models: Sequence[nn.Module] | None = None,
    ) -> None:  # fmt: skip
        if case_models is not None and len(case_models) != len(dataset):
            raise ValueError(f"{len(case_models)} case models for {len(dataset)} images")
        self.model, self.dataset, self.methods, self.options = model, dataset, list(methods), options
        self.predicted, self.seed, self.attribution = predicted, seed, attribution
        self.batch_size, self.debug, self.case_models = batch_size, debug, case_models
        given = {
            "PointingGame": {"tolerance": tolerance},
            "TopKIntersection": {} if top_k is None else {"k": top_k},
        }
        self.settings = metric_settings(LOCALISATION_METRICS, given)
        self.device = next(model.parameters()).device

    def load(self, cases: Sequence[int]) -> Sequence[int]:
        return cases

    def compute(self, cases: Sequence[int]) -> Iterator[list[ImageScores]]:
        yield [self.case(i) for i in cases]

    def case(self, i: int) -> ImageScores:
        """Case ``i`` explained by every method and scored."""
        dataset = self.dataset
        image, mask, label = dataset.images[i], dataset.masks[i], int(dataset.labels[i])
        explained, target = (self.model, label) if self.case_models is None else (self.case_models[i], 0)
        session = ImageSession(explained, image)
        scored_image = ImageScores(i)
        for method in self.methods:
            start = time.perf_counter()
            note = ""
            try:
                raw = explain(method, explained, image, target, seed=self.seed, device=self.device,
                              batch_size=self.batch_size, session=session,
                              **self.options.get(method, {})).map  # fmt: skip
                scored = postprocess(raw, self.attribution)
                scores = {m: r.value for m, r in localisation_scores(scored, mask, self.settings).items()}
                scored_image.maps[method] = scored
            except (ValueError, RuntimeError) as error:  # UserInputError is a ValueError; CUDA's a RuntimeError
                if self.debug or not recover_from(error):
                    raise
                note = f"{type(error).__name__}: {error}".replace("\n", " ")
                scores = dict.fromkeys(LOCALISATION_METRICS, float("nan"))
            seconds = time.perf_counter() - start
            scored_image.seconds[method] = seconds
            if not note and any(math.isnan(v) for v in scores.values()):
                note = NO_RELEVANCE if math.isnan(scores["RelevanceMassAccuracy"]) else UNDEFINED
            scored_image.rows += self.rows(i, method, scores, seconds, note)
        return scored_image

    def lost(self, i: int, reason: str) -> ImageScores:
        """NaN rows with the reason for case ``i``, whose worker kept dying on it."""
        lost = ImageScores(i)
        nan = dict.fromkeys(LOCALISATION_METRICS, float("nan"))
        lost.rows = [row for m in self.methods for row in self.rows(i, m, nan, 0.0, reason)]
        return lost

    def rows(self, i: int, method: str, scores: Mapping[str, float], seconds: float, note: str) -> list[dict]:
        """One row per metric of image ``i`` and ``method`` (``SCORE_COLUMNS``)."""
        dataset = self.dataset
        return [
            {"image": int(dataset.indices[i]), "label": int(dataset.labels[i]), "predicted": int(self.predicted[i]),
             "method": method, "metric": metric, "value": value, "seconds": round(seconds, 4), "note": note}
            for metric, value in scores.items()
        ]  # fmt: skip


@dataclass
class ImageScores:
    """One case's part of a :class:`LocalisationResult`: its place in the set, its rows (a failure's reason in
    their notes), and per method its map (none where it failed) and seconds."""

    index: int
    rows: list[dict] = field(default_factory=list)
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def image_units(dataset: SyntheticSet, shard: tuple[int, int] = (1, 1)) -> dict[int, list[int]]:
    """The units of shard i of n (1-based; (1, 1) the whole run), in the order of the run: each test image (for a
    task, each scene) whose index in its split is i-1 modulo n, with the places of its cases in ``dataset``."""
    units: dict[int, list[int]] = {}
    for place, image in enumerate(dataset.indices):
        if int(image) % shard[1] == shard[0] - 1:
            units.setdefault(int(image), []).append(place)
    return units


def localise(
    work: LocaliseWork, units: Mapping[int, Sequence[int]], pool: Any = None
) -> Iterator[tuple[int, list[ImageScores]]]:
    """Each unit of ``units`` (:func:`image_units`) with its cases' scores, in the order of ``units``: computed
    by ``work`` here, or by ``pool`` (a :class:`~cnnxai.distributed.WorkerPool` of the same work) on Ray, where
    a unit finished early waits for those before it. A unit whose worker kept dying gets NaN rows with the
    reason."""
    items = [(image, tuple(cases), len(cases) * len(work.methods)) for image, cases in units.items()]
    for image, results in in_order((pool or LocalPool(work)).map_unordered(items), units):
        failed = isinstance(results, WorkFailed)
        yield image, [work.lost(i, results.reason) for i in units[image]] if failed else results[0]


def method_failures(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The first failure of each method that failed on some case (the note of its NaN rows), in row order."""
    failures: dict[str, str] = {}
    for row in rows:
        if row["note"] not in ("", NO_RELEVANCE, UNDEFINED):
            failures.setdefault(row["method"], row["note"])
    return failures


def warn_failures(failures: Mapping[str, str]) -> None:
    for method, reason in failures.items():
        warnings.warn(f"{method} failed on some images ({reason}); their scores are NaN", stacklevel=3)


def example_indices(labels: np.ndarray, count: int) -> list[int]:
    """``count`` images for the figure: the first of each class in class order, then the second of each, ..."""
    by_class = [list(np.flatnonzero(labels == c)) for c in range(len(CLASSES))]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < count and depth < len(labels):
        for members in by_class:
            if depth < len(members) and len(chosen) < count:
                chosen.append(int(members[depth]))
        depth += 1
    return chosen


def example_title(dataset: SyntheticSet, i: int) -> str:
    """How example ``i`` is named in examples.png and report.html: its index in the test split, its class."""
    return f"#{int(dataset.indices[i])} {CLASSES[int(dataset.labels[i])]}"


def run_localisation(
    model: nn.Module,
    dataset: SyntheticSet,
    methods: Sequence[str],
    options: Mapping[str, Mapping[str, Any]],
    seed: int = 0,
    attribution: str = "positive",
    top_k: int | None = None,
    tolerance: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    debug: bool = False,
    case_models: Sequence[nn.Module] | None = None,
    pool: Any = None,
) -> LocalisationResult:
    """Explain each image's true class with each method and score the post-processed map against its mask, in
    memory (Localisation.py's run, :class:`~cnnxai.groundtruth.report.LocalisationRun`, keeps its rows on disk).

    ``case_models`` (one per image) replaces ``model`` for the applications: image i is explained on
    ``case_models[i]``, a :class:`~cnnxai.targets.TargetScore` whose one output (class 0) is the score of
    that image's box or region, and the label is then only recorded (it is the class of that box or region).

    ``options[method]`` are the options given to each explainer (its declared defaults fill the rest). An
    explainer that fails on an image (ValueError/RuntimeError) gives NaN rows with the reason, and a warning
    (``debug`` re-raises). ``top_k`` and ``tolerance`` set TopKIntersection's k and PointingGame's tolerance
    (None: the metrics' defaults). ``pool``: a :class:`~cnnxai.distributed.WorkerPool` of :class:`LocaliseWork`
    on the same images to compute on Ray (None: here); the rows are in the images' order.
    """
    predicted = predictions(model, dataset.images) if case_models is None else dataset.labels.copy()
    work = LocaliseWork(model, dataset, methods, options, predicted, seed, attribution, top_k, tolerance,
                        batch_size, debug, case_models)  # fmt: skip
    result = LocalisationResult(predicted=predicted)
    size = dataset.images.shape[1:3]
    result.maps = {m: np.full((len(dataset), *size), np.nan, dtype=np.float32) for m in methods}
    result.seconds = dict.fromkeys(methods, 0.0)
    with tqdm(
        total=len(dataset) * len(methods), desc="localisation", unit="map", disable=not progress
    ) as bar:
        for _, cases in localise(work, image_units(dataset), pool):
            for scored in cases:
                result.rows += scored.rows
                for method, attribution_map in scored.maps.items():
                    result.maps[method][scored.index] = attribution_map
                for method, seconds in scored.seconds.items():
                    result.seconds[method] += seconds
                bar.update(len(methods))
    result.failures = method_failures(result.rows)
    warn_failures(result.failures)
    return result
