"""Localisation.py as a library call: typed settings, :func:`run_localisation_benchmark` (the run on the one run
template, :class:`LocalisationRun`: its rows in ``scores.csv``, appended as computed, so an interrupted run
resumes and ``--shard i/n`` splits the images), and the report of a finished run's folder (data: the settings,
every row, the stored examples; it is read and written by :mod:`cnnxai.reporting.localisation`, in the reporting
layer)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch import nn

from cnnxai.benchmark.gallery import DEFAULT_REPORT_IMAGES, GalleryImage, save_gallery_maps
from cnnxai.benchmark.runner import ATTRIBUTION_VIEWS, ResumableRun
from cnnxai.benchmark.statistics import choose_baseline
from cnnxai.benchmark.store import ResultStore, read_rows
from cnnxai.devices import resolve_device
from cnnxai.distributed import RaySettings
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY
from cnnxai.groundtruth.benchmark import (
    EXCLUDED_BY_DEFAULT,
    SCORE_COLUMNS,
    ImageScores,
    LocaliseWork,
    default_methods,
    example_indices,
    example_title,
    image_units,
    method_failures,
    predictions,
    warn_failures,
)
from cnnxai.metrics import LOCALISATION_METRICS, METRICS
from cnnxai.metrics.localisation import default_tolerance
from cnnxai.outputs import build_manifest, json_fallback
from cnnxai.synthetic.scene_models import load_shapes_detector, load_shapes_segmenter
from cnnxai.synthetic.scenes import SceneSettings, make_scenes
from cnnxai.synthetic.shapes import CLASSES, SyntheticSet, SyntheticSettings, make_synthetic
from cnnxai.synthetic.shapes_model import load_shapes_model
from cnnxai.targets import TargetScore
from cnnxai.tasks.groundtruth import detection_cases, segmentation_cases
from cnnxai.tasks.models import DEFAULT_TASK_MODELS, TASK_MODELS

MAX_TEST_IMAGES = 100_000
# The settings that decide the rows: a resumed run and every shard of a run must have the same (the others, such
# as the device, the batch size, the examples shown or the baseline, may differ).
ROW_SETTINGS = ("methods", "explainer_options", "num_images", "seed", "data_seed", "train_images", "epochs",
                "attribution", "top_k", "tolerance", "task")  # fmt: skip
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
    tool: ClassVar[str] = "Localisation"

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


@dataclass(frozen=True)
class LocalisationRequest:
    """Everything a Localisation.py run reads: its ``settings`` (what it computes), the ``output_dir`` and
    ``shard`` (i, n) computed here, ``ray`` (compute on Ray workers; None: here), ``report_images`` (the examples
    whose maps report.html shows), ``dpi`` of the figures, ``overwrite`` (delete an earlier run's files first),
    ``debug`` (an explainer's error stops the run), ``quiet`` (no progress bar) and ``record`` (the options
    written in the manifest: the command line's)."""

    settings: LocalisationSettings
    output_dir: str = "results/localisation"
    shard: tuple[int, int] = (1, 1)
    ray: RaySettings | None = None
    report_images: int = DEFAULT_REPORT_IMAGES
    dpi: int = 150
    overwrite: bool = False
    debug: bool = False
    quiet: bool = False
    record: Mapping[str, Any] | None = None


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


def typed_row(row: Mapping[str, str]) -> dict:
    """A row of scores.csv as the run made it (numbers as numbers, so images sort by their index)."""
    return {**row, "image": int(row["image"]), "label": int(row["label"]), "predicted": int(row["predicted"]),
            "value": float(row["value"]), "seconds": float(row["seconds"])}  # fmt: skip


def first_rows(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> list[Mapping[str, Any]]:
    """One row per case (its first method's first metric), in the rows' order."""
    return [r for r in rows if r["method"] == methods[0] and r["metric"] == LOCALISATION_METRICS[0]]


@dataclass
class LocalisationReport:
    """A run's folder as read back (every shard present): the settings, the model's info, every row (as
    :func:`typed_row` makes it, in the order of the run within each shard), the stored examples (the first
    ``settings.shown`` by their place among the examples) and the shards present."""

    settings: LocalisationSettings
    model_info: dict
    rows: list[dict]
    examples: list[GalleryImage] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        return list(LOCALISATION_METRICS)

    @property
    def directions(self) -> dict[str, str]:
        return dict.fromkeys(self.metrics, "higher")

    @property
    def cases(self) -> int:
        return len(first_rows(self.rows, self.settings.methods))

    @property
    def accuracy(self) -> float:
        """The model's accuracy on the explained images."""
        cases = first_rows(self.rows, self.settings.methods)
        return float(np.mean([r["predicted"] == r["label"] for r in cases])) if cases else float("nan")

    def note(self) -> str:
        s = self.settings
        shards = f" (shards present: {', '.join(self.shards)})" if self.shards else ""
        if s.task != "classification":
            what = ("the box of each object the detector finds (its class, score >= 0.5, IoU >= 0.5 with the object), "
                    "explained for its D-RISE score" if s.task == "detection" else
                    "the region the segmenter predicts for each class of the scene's objects, explained for its mean "
                    "probability")  # fmt: skip
            return (
                f"# Localisation of {s.task} explanations on the synthetic scenes\n\n{self.cases} cases from "
                f"{s.num_images} test scenes{shards} ({s.data.size}x{s.data.size}, data seed {s.data_seed}; {model_quality(s.task, self.model_info)}): {what}; the "
                f"evidence is the object's mask. Scored: the {s.attribution} part of each map. PointingGame tolerance "
                f"{s.pointing_tolerance} px; TopKIntersection k = {s.k}; ties averaged (see docs/applications.md)."
            )
        return (
            f"# Localisation on the synthetic shapes benchmark\n\n{s.num_images} test images{shards} (64x64, data seed "
            f"{s.data_seed}), each explained for its true class; model test accuracy "
            f"{self.model_info['test_accuracy']:.4f} (on these images {self.accuracy:.4f}). Scored: the "
            f"{s.attribution} part of each map. PointingGame tolerance {s.pointing_tolerance} px; "
            f"TopKIntersection k = {s.k}; ties averaged (see docs/ground-truth.md)."
        )


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


class LocalisationRun(ResumableRun):
    """One run (or one shard of it) of the localisation benchmark into ``folder``, on the one run template
    (:class:`~cnnxai.benchmark.runner.ResumableRun`): its rows in ``scores.csv`` (``SCORE_COLUMNS``), appended a
    unit at a time in the order of the run (:func:`~cnnxai.groundtruth.benchmark.image_units`: one test image,
    or one scene with all its cases, with every method), so a killed or interrupted run resumes to the same rows
    and shard i of n computes every n-th image. The maps of the examples (those of examples.png and of
    report.html's gallery) are kept in ``gallery/`` beside the rows as their units finish.

    Args:
        settings: the run's :class:`LocalisationSettings`; ``model`` and ``model_info`` from
            :func:`load_localisation_model`; ``dataset`` and ``case_models`` from :func:`localisation_data`.
        folder, shard, progress: as :class:`~cnnxai.benchmark.runner.ResumableRun`'s.
        options: recorded in the manifest (the command line's); debug: an explainer's error stops the run.
        pool: a :class:`~cnnxai.distributed.WorkerPool` of :func:`localise_in_worker` to compute on Ray (None:
            here); report_images: the examples whose maps report.html shows.
    """

    bar_unit = "map"

    def __init__(
        self, settings: LocalisationSettings, model: nn.Module, model_info: dict, dataset: SyntheticSet,
        case_models: Sequence[nn.Module] | None, folder: Path, shard: tuple[int, int] = (1, 1),
        options: Mapping[str, Any] | None = None, progress: bool = True, debug: bool = False, pool: Any = None,
        report_images: int = DEFAULT_REPORT_IMAGES,
    ) -> None:  # fmt: skip
        super().__init__(settings, folder, shard, progress, pool)
        self.model_info, self.dataset = model_info, dataset
        self.options = dict(options or {})
        predicted = predictions(model, dataset.images) if case_models is None else dataset.labels.copy()
        self.work = LocaliseWork(
            model, dataset, settings.methods, settings.explainer_options, predicted, settings.seed,
            settings.attribution, settings.k, settings.pointing_tolerance, settings.batch_size, debug, case_models,
        )  # fmt: skip
        self.device = pool.device if pool is not None else str(next(model.parameters()).device)
        self.mine = image_units(dataset, shard)
        count = min(max(settings.shown, report_images), len(dataset))
        self.examples = {i: order for order, i in enumerate(example_indices(dataset.labels, count))}
        self.store = ResultStore(self.rows_folder, rows=("scores.csv", SCORE_COLUMNS), curves=None,
                                 unit=lambda row: int(row["image"]), key=None)  # fmt: skip

    def identity(self) -> dict:
        """What must be equal for rows to belong to the same run: :data:`ROW_SETTINGS`, the model's settings,
        the cases, the number of shards."""
        decided = {name: getattr(self.settings, name) for name in ROW_SETTINGS}
        return {
            "settings": json.loads(json.dumps(decided, default=json_fallback)),
            "model": {k: self.model_info.get(k) for k in ("name", "settings")},
            "data": {"cases": len(self.dataset)},
            "shards": self.shard[1],
        }

    def units(self) -> dict[int, int]:
        """Score rows expected of each unit (test image or scene) of this shard: cases x methods x metrics."""
        rows = len(self.settings.methods) * len(LOCALISATION_METRICS)
        return {image: len(cases) * rows for image, cases in self.mine.items()}

    def _unit_size(self, unit: int, rows: int) -> int:
        return len(self.mine[unit]) * len(self.settings.methods)  # the bar counts maps

    def _inputs(self) -> dict:
        return {"images": len(self.mine), "cases": sum(len(cases) for cases in self.mine.values())}

    ordered = True  # rows in the order of the run, whatever worker finishes first

    def _work(self, expected: dict, done: set) -> list[tuple[int, tuple[int, ...], int]]:
        methods = len(self.settings.methods)
        return [(image, tuple(cases), len(cases) * methods) for image, cases in self.mine.items() if image not in done]

    def _worker(self) -> LocaliseWork:
        return self.work

    def _take(self, image: int, cases: list[ImageScores], done: set, bar: Any) -> None:
        rows = [{**row, "value": repr(float(row["value"]))} for scored in cases for row in scored.rows]
        self.store.append(rows)
        for scored in cases:
            self._keep_example(scored)
        done.add(image)
        if bar is not None:
            bar.update(len(cases) * len(self.settings.methods))

    def _given_up(self, image: int, reason: str, expected: dict, done: set) -> list[list[ImageScores]]:
        return [[self.work.lost(i, reason) for i in self.mine[image]]]

    def _totals(self) -> dict:
        warn_failures(method_failures(self._rows()))
        return {}

    def _keep_example(self, scored: ImageScores) -> None:
        """Add an example's maps (as scored; NaN where its method failed) to ``gallery/`` beside the rows (after
        the rows: a killed run may lack an example, never a row)."""
        i, dataset = scored.index, self.dataset
        if i not in self.examples:
            return
        nan = np.full(dataset.images.shape[1:3], np.nan, dtype=np.float32)
        maps = {m: scored.maps.get(m, nan) for m in self.settings.methods}
        save_gallery_maps(self.rows_folder, f"case-{i}", self.examples[i], dataset.images[i], maps,
                          example_title(dataset, i), dataset.masks[i])  # fmt: skip

    def _rows(self) -> list[dict]:
        return [typed_row(row) for row in read_rows(self.store.scores_path, SCORE_COLUMNS)]

    def _manifest(self, extra: dict) -> dict:
        s, rows = self.settings, self._rows()
        cases = first_rows(rows, s.methods)
        failures = method_failures(rows)
        seconds = {m: sum(r["seconds"] for r in rows if r["method"] == m and r["metric"] == LOCALISATION_METRICS[0])
                   for m in s.methods}  # fmt: skip
        return build_manifest(
            "Localisation.py", ("captum", "zennit"), seed=s.seed, options=self.options,
            explainer_options={m: REGISTRY.options(m, s.explainer_options.get(m, {})) for m in s.methods},
            pointing_tolerance=s.pointing_tolerance, top_k=s.k, attribution=s.attribution, device=self.device,
            data={**asdict(s.data), "classes": list(CLASSES), "test_images": s.num_images},
            model=self.model_info,
            accuracy_on_explained_images=float(np.mean([r["predicted"] == r["label"] for r in cases]))
            if cases else None,
            methods={
                m: {"seconds_total": round(seconds[m], 3),
                    "seconds_per_image": round(seconds[m] / len(cases), 4) if cases else None,
                    "failure": failures.get(m)}
                for m in s.methods
            },
            metrics={name: METRICS[name].description for name in LOCALISATION_METRICS},
            identity=self.identity(), **extra,
        )  # fmt: skip


def run_localisation_benchmark(
    settings: LocalisationSettings,
    model: nn.Module,
    model_info: dict,
    folder: str | Path,
    shard: tuple[int, int] = (1, 1),
    options: Mapping[str, Any] | None = None,
    progress: bool = True,
    debug: bool = False,
    pool: Any = None,
    report_images: int = DEFAULT_REPORT_IMAGES,
) -> dict:
    """Explain the first ``settings.num_images`` test images (those of ``shard``) with every method of the
    settings and score their maps against the objects' masks (``model`` from :func:`load_localisation_model`),
    the rows into ``folder`` (:class:`LocalisationRun`; an interrupted run resumes). ``pool``: Ray workers of
    :func:`localise_in_worker` with the same settings (None: compute here). Returns the shard's status; the
    summary over every shard present is :func:`cnnxai.reporting.localisation.summarize_localisation`'s."""
    dataset, case_models = localisation_data(settings, model)
    run = LocalisationRun(settings, model, model_info, dataset, case_models, Path(folder), shard, options,
                          progress, debug, pool, report_images)  # fmt: skip
    return run.run()
