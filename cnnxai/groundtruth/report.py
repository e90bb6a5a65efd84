"""Localisation.py as a library call: typed settings, :func:`run_localisation_benchmark`, and the report it
returns (data: the settings, the images, every row and map; its writer is
:func:`cnnxai.reporting.localisation.save_localisation`, in the reporting layer)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from torch import nn

from cnnxai.benchmark.runner import ATTRIBUTION_VIEWS
from cnnxai.benchmark.statistics import choose_baseline
from cnnxai.devices import resolve_device
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY
from cnnxai.groundtruth.benchmark import (
    EXCLUDED_BY_DEFAULT,
    LocalisationResult,
    LocaliseWork,
    default_methods,
    predictions,
    run_localisation,
)
from cnnxai.metrics import LOCALISATION_METRICS, METRICS
from cnnxai.metrics.localisation import default_tolerance
from cnnxai.outputs import build_manifest
from cnnxai.synthetic.scene_models import load_shapes_detector, load_shapes_segmenter
from cnnxai.synthetic.scenes import SceneSettings, make_scenes
from cnnxai.synthetic.shapes import CLASSES, SyntheticSet, SyntheticSettings, make_synthetic
from cnnxai.synthetic.shapes_model import load_shapes_model
from cnnxai.targets import TargetScore
from cnnxai.tasks.groundtruth import detection_cases, segmentation_cases
from cnnxai.tasks.models import DEFAULT_TASK_MODELS, TASK_MODELS

MAX_TEST_IMAGES = 100_000
LOCALISATION_TASKS = ("classification", "detection", "segmentation")
DEFAULT_EXAMPLES = 4


@dataclass(frozen=True)
class LocalisationSettings:
    """What a localisation run computes.

    ``methods`` the explainers (default: all but NormLIME's two, whose global weights need a reference fit);
    ``explainer_options[method]`` their given options; ``num_images`` the first N test images; ``seed`` of the
    explainers' draws; ``data_seed`` of the images and the model's training (with ``train_images``, ``epochs``);
    ``attribution`` the post-processing of every map before it is scored; ``top_k`` / ``tolerance``
    TopKIntersection's k and PointingGame's tolerance (None: the metrics' own defaults); ``examples`` images drawn
    in examples.png (None: 4, or ``num_images`` if fewer). ``task`` 'detection' or 'segmentation' explains the
    boxes of the synthetic detector, or the class regions of the synthetic segmenter, on the first ``num_images``
    test scenes instead (``train_images`` and ``epochs`` then do not apply: those models have their own).
    ``baseline``: the method of the summary's paired comparisons (None: lime, or the first method); the
    statistics' bootstrap uses ``seed``.
    """

    methods: tuple[str, ...] = ()
    explainer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    num_images: int = 200
    seed: int = 0
    data_seed: int = 0
    train_images: int = 4000
    epochs: int = 10
    cache_dir: str | None = None
    retrain: bool = False
    attribution: str = "positive"
    top_k: int | None = None
    tolerance: int | None = None
    examples: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    task: str = "classification"
    baseline: str | None = None

    def __post_init__(self) -> None:
        if self.task not in LOCALISATION_TASKS:
            raise UserInputError(f"--task {self.task}: choose one of {', '.join(LOCALISATION_TASKS)}")
        object.__setattr__(self, "methods", tuple(self.methods) or tuple(default_methods(self.task)))
        choose_baseline(self.methods, self.baseline)
        refused = [m for m in self.methods if m in EXCLUDED_BY_DEFAULT]
        if refused:
            raise UserInputError(
                f"--methods {','.join(refused)}: NormLIME's global weights need a reference image folder of this "
                "model's images, which this benchmark does not fit; leave it out"
            )
        for method in self.methods:
            REGISTRY.options(method, self.explainer_options.get(method, {}))
        if self.num_images > MAX_TEST_IMAGES:
            raise UserInputError(f"--num-images {self.num_images}: at most {MAX_TEST_IMAGES}")
        if self.attribution not in ATTRIBUTION_VIEWS:
            raise UserInputError(
                f"--attribution {self.attribution}: choose one of {', '.join(ATTRIBUTION_VIEWS)}"
            )
        pixels = self.data.size**2
        if self.k > pixels:
            raise UserInputError(
                f"--top-k {self.k}: larger than the image's {pixels} pixels; use at most {pixels}"
            )
        if self.task == "classification" and self.shown > self.num_images:
            raise UserInputError(
                f"--examples {self.shown}: more than --num-images {self.num_images}; lower it"
            )

    @property
    def data(self) -> SyntheticSettings | SceneSettings:
        return (
            SyntheticSettings(seed=self.data_seed)
            if self.task == "classification"
            else SceneSettings(seed=self.data_seed)
        )

    @property
    def k(self) -> int:
        return METRICS["TopKIntersection"].params["k"] if self.top_k is None else self.top_k

    @property
    def pointing_tolerance(self) -> int:
        return default_tolerance(self.data.size) if self.tolerance is None else self.tolerance

    @property
    def shown(self) -> int:
        return min(DEFAULT_EXAMPLES, self.num_images) if self.examples is None else self.examples


def load_localisation_model(settings: LocalisationSettings) -> tuple[nn.Module, dict]:
    """The trained ShapesNet of the settings (or, for a task, the synthetic detector or segmenter), from the cache
    or trained now, on the settings' device, and its info (test quality, seconds, cache file, whether loaded)."""
    if settings.task == "detection":
        model, info = load_shapes_detector(
            settings.data, cache_dir=settings.cache_dir, retrain=settings.retrain
        )
    elif settings.task == "segmentation":
        model, info = load_shapes_segmenter(
            settings.data, cache_dir=settings.cache_dir, retrain=settings.retrain
        )
    else:
        model, info = load_shapes_model(settings.data, settings.train_images, epochs=settings.epochs,
                                        cache_dir=settings.cache_dir, retrain=settings.retrain)  # fmt: skip
    return model.to(resolve_device(settings.device)), info


def task_layers(task: str) -> list[str]:
    """The CAM layer of a task's synthetic model, as the explainers see it (inside a TargetScore)."""
    return TargetScore.layer_names(TASK_MODELS[DEFAULT_TASK_MODELS[task]].layers)


def model_quality(task: str, info: Mapping[str, Any]) -> str:
    """The model's test quality, as one phrase."""
    if task == "detection":
        return f"test mAP@0.5 {info['map']:.4f}, recall {info['recall']:.4f}"
    if task == "segmentation":
        return f"test mean IoU {info['miou']:.4f}"
    return f"test accuracy {info['test_accuracy']:.4f}"


@dataclass
class LocalisationReport:
    """A finished run: the settings, the model's info, the test images, every row and map."""

    settings: LocalisationSettings
    model_info: dict
    dataset: SyntheticSet
    result: LocalisationResult
    device: str
    seconds: float
    cluster: dict | None = None  # with Ray: the cluster and each worker's throughput

    @property
    def metrics(self) -> list[str]:
        return list(LOCALISATION_METRICS)

    @property
    def directions(self) -> dict[str, str]:
        return dict.fromkeys(self.metrics, "higher")

    @property
    def accuracy(self) -> float:
        """The model's accuracy on the explained images."""
        return float(np.mean(self.result.predicted == self.dataset.labels))

    def note(self) -> str:
        s = self.settings
        if s.task != "classification":
            what = ("the box of each object the detector finds (its class, score >= 0.5, IoU >= 0.5 with the object), "
                    "explained for its D-RISE score" if s.task == "detection" else
                    "the region the segmenter predicts for each class of the scene's objects, explained for its mean "
                    "probability")  # fmt: skip
            return (
                f"# Localisation of {s.task} explanations on the synthetic scenes\n\n{len(self.dataset)} cases from "
                f"{s.num_images} test scenes ({s.data.size}x{s.data.size}, data seed {s.data_seed}; {model_quality(s.task, self.model_info)}): {what}; the "
                f"evidence is the object's mask. Scored: the {s.attribution} part of each map. PointingGame tolerance "
                f"{s.pointing_tolerance} px; TopKIntersection k = {s.k}; ties averaged (see docs/applications.md)."
            )
        return (
            f"# Localisation on the synthetic shapes benchmark\n\n{s.num_images} test images (64x64, data seed "
            f"{s.data_seed}), each explained for its true class; model test accuracy "
            f"{self.model_info['test_accuracy']:.4f} (on these images {self.accuracy:.4f}). Scored: the "
            f"{s.attribution} part of each map. PointingGame tolerance {s.pointing_tolerance} px; "
            f"TopKIntersection k = {s.k}; ties averaged (see docs/ground-truth.md)."
        )

    def manifest(self, options: Mapping[str, Any] | None = None) -> dict:
        s, result = self.settings, self.result
        return build_manifest(
            "Localisation.py", ("captum", "zennit"), seed=s.seed, options=dict(options or {}),
            explainer_options={m: REGISTRY.options(m, s.explainer_options.get(m, {})) for m in s.methods},
            pointing_tolerance=s.pointing_tolerance, top_k=s.k, attribution=s.attribution, device=self.device,
            data={**asdict(s.data), "classes": list(CLASSES), "test_images": s.num_images},
            model=self.model_info, accuracy_on_explained_images=self.accuracy,
            methods={
                m: {"seconds_total": round(result.seconds[m], 3),
                    "seconds_per_image": round(result.seconds[m] / len(self.dataset), 4),
                    "failure": result.failures.get(m)}
                for m in s.methods
            },
            metrics={name: METRICS[name].description for name in self.metrics},
            seconds=round(self.seconds, 2), **({"cluster": self.cluster} if self.cluster else {}),
        )  # fmt: skip

def localisation_data(
    settings: LocalisationSettings, model: nn.Module
) -> tuple[SyntheticSet, list[TargetScore] | None]:
    """The images a run explains, and for a task the model of each case (its box or region as one score)."""
    if settings.task == "classification":
        return make_synthetic(settings.data, "test", settings.num_images), None
    scenes = make_scenes(settings.data, "test", settings.num_images)
    cases = detection_cases if settings.task == "detection" else segmentation_cases
    dataset, case_models = cases(model, scenes)
    if len(dataset) == 0:
        raise UserInputError(f"the {settings.task} model explains nothing on these {settings.num_images} scenes "
                             "(no object found); raise --num-images")  # fmt: skip
    return dataset, case_models


def localise_in_worker(settings: LocalisationSettings, debug: bool, device: str) -> LocaliseWork:
    """A :class:`~cnnxai.groundtruth.benchmark.LocaliseWork` built inside a Ray worker: the model loaded from
    the cache the driver filled (on a cluster, a ``cache_dir`` every node reads), the images made again from
    the seed, on ``device``."""
    settings = replace(settings, device=device, retrain=False)
    model, _ = load_localisation_model(settings)
    dataset, case_models = localisation_data(settings, model)
    predicted = predictions(model, dataset.images) if case_models is None else dataset.labels.copy()
    return LocaliseWork(
        model, dataset, settings.methods, settings.explainer_options, predicted, settings.seed,
        settings.attribution, settings.k, settings.pointing_tolerance, settings.batch_size, debug, case_models,
    )  # fmt: skip


def run_localisation_benchmark(
    settings: LocalisationSettings,
    model: nn.Module,
    model_info: dict,
    progress: bool = True,
    debug: bool = False,
    pool: Any = None,
) -> LocalisationReport:
    """Explain the first ``settings.num_images`` test images with every method of the settings and score their
    maps against the objects' masks (``model`` from :func:`load_localisation_model`). ``pool``: Ray workers
    of :func:`localise_in_worker` with the same settings (None: compute here)."""
    started = time.perf_counter()
    dataset, case_models = localisation_data(settings, model)
    result = run_localisation(
        model, dataset, settings.methods, settings.explainer_options, settings.seed, settings.attribution,
        settings.k, settings.pointing_tolerance, settings.batch_size, progress=progress, debug=debug,
        case_models=case_models, pool=pool,
    )  # fmt: skip
    device = pool.device if pool is not None else str(next(model.parameters()).device)
    report = LocalisationReport(settings, model_info, dataset, result, device, time.perf_counter() - started)
    if pool is not None:
        report.cluster = pool.describe("maps")
    return report
