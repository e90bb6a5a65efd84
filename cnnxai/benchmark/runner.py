"""A benchmark run: every image x explainer x metric, appended to scores.csv as it is computed, resumable.

Work is done a unit at a time: one group of images (the Sufficiency batch; a single image when Sufficiency is
not asked for) with one explainer. Within a group, each image is loaded, predicted and prepared once
(:class:`~cnnxai.metrics.ImageMetrics`) and every explainer is scored on it with the same random draws, and
the LIME family shares one perturbation set per image. Nothing about a unit depends on which units ran
before it, so an interrupted, resumed or sharded run writes the same rows as one uninterrupted run.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnxai.benchmark.cache import ResultCache
from cnnxai.benchmark.data import BenchmarkImage, Dataset, ImageGroup, make_groups, shard_groups
from cnnxai.benchmark.gallery import DEFAULT_REPORT_IMAGES, save_gallery_maps
from cnnxai.benchmark.store import (
    ResultStore,
    check_identity,
    read_rows,
    run_lock,
)
from cnnxai.devices import recover_from, resolve_device
from cnnxai.distributed import LocalPool, WorkFailed, in_order
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY, explain
from cnnxai.metrics import METRICS, ImageMetrics, MetricResult, check_sizes, sufficiency
from cnnxai.metrics.result import undefined
from cnnxai.outputs import build_manifest, json_fallback, write_json
from cnnxai.preprocess import FRAME_SIZE, RESIZE_SIZE, to_model_frame
from cnnxai.session import ImageSession
from cnnxai.zoo import imagenet_class_names
from lime_ext import module_device

ATTRIBUTION_VIEWS = ("signed", "positive", "absolute")
TARGETS = ("predicted", "true")
CURVE_METRICS = ("Deletion", "Insertion")
UNREADABLE = "image could not be read"
# A gallery image's part of a unit: its frame (224,224,3) uint8, the map as scored (224,224) float32, the target.
Shown = tuple[np.ndarray, np.ndarray, int]
UnitRows = tuple[
    str, list[dict], list[dict], list[float], dict[str, Shown], dict[str, int]
]  # (method, score rows, curve rows, explain seconds, the maps of the gallery's images by image key,
#    the maps and scores read from the cache)


@dataclass(frozen=True)
class BenchmarkSettings:
    """Everything that decides the rows of a run (a resumed run must have the same).

    ``explainer_options[method]`` are the options given to each explainer (its declared defaults fill the rest).
    ``attribution`` is the one post-processing every explainer's map gets before it is scored: 'signed' (as
    the explainer returns it), 'positive' (negative parts set to 0) or 'absolute'. ``group_size`` is the
    number of images scored together (Sufficiency's batch); ``target`` 'predicted' or 'true' (the class folder).
    ``preprocess``, ``resize`` and ``frame_size``: how an image becomes the model-input frame
    (:func:`cnnxai.preprocess.to_model_frame`; the side the model takes).
    """

    tool: str
    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    metric_settings: dict[str, dict[str, Any]]
    explainer_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    feature_unit: str = "pixel"
    attribution: str = "signed"
    group_size: int = 1
    target: str = "predicted"
    seed: int = 0
    preprocess: str = "crop"
    frame_size: int = FRAME_SIZE
    resize: int = RESIZE_SIZE
    tf32: bool = False

    def __post_init__(self) -> None:
        # Every explainer's options, defaults filled in: the rows depend on them, so the run's identity does.
        resolved = {m: REGISTRY.options(m, self.explainer_options.get(m, {})) for m in self.methods}
        object.__setattr__(self, "explainer_options", resolved)
        if self.attribution not in ATTRIBUTION_VIEWS:
            raise UserInputError(
                f"attribution view {self.attribution!r}: choose one of {', '.join(ATTRIBUTION_VIEWS)}"
            )
        if self.target not in TARGETS:
            raise UserInputError(f"target {self.target!r}: choose one of {', '.join(TARGETS)}")


def postprocess(attribution: np.ndarray, view: str) -> np.ndarray:
    """The same post-processing for every explainer: float32 (H,W), signed, positive part or magnitude."""
    attribution = np.asarray(attribution, dtype=np.float32)
    if view == "positive":
        return np.maximum(attribution, 0)
    if view == "absolute":
        return np.abs(attribution)
    return attribution


@dataclass
class PreparedImage:
    """One image, ready to explain and score; ``error`` says why it cannot be (then nothing else is set). Its
    ``session`` (the frame on the run's model) is shared by every explainer and by its ``metrics``."""

    image: BenchmarkImage
    error: str = ""
    frame: np.ndarray | None = None
    session: ImageSession | None = None
    metrics: ImageMetrics | None = None


class ResumableRun:
    """The one run template: a run (or one shard of it) whose work comes in units and whose rows go to a
    :class:`~cnnxai.benchmark.store.ResultStore`, so that an interrupted run resumes to the same rows and the
    shards of a run split its units. :meth:`run` owns the run lock, the identity check, the recovery of the
    finished units, the manifest, the progress bar and the status.

    A subclass sets ``self.store`` and supplies ``identity()``, its units and rows through the hooks below
    (:class:`ImageFolderRun` for the runs over an image folder; the localisation run over the synthetic sets).
    The pending work is computed by :meth:`_compute`, here or on the pool: a subclass says what the work items
    are (:meth:`_work`), what computes one (:meth:`_worker`, an object with ``load(item)`` and ``compute(loaded)``
    yielding finished units, as :class:`~cnnxai.distributed.LocalPool` and the Ray pool take), what to do with a
    finished unit (:meth:`_take`) and with an item a worker kept dying on (:meth:`_given_up`).

    Args:
        settings: a frozen dataclass of everything that decides the rows (its ``tool`` names the run).
        folder: the output folder; a shard writes its rows to ``folder/shards/<i>-of-<n>/``.
        shard: (i, n), 1-based; (1, 1) is the whole run.
        progress: show a progress bar.
        pool: a :class:`~cnnxai.distributed.WorkerPool` given the run's work objects (built in each Ray worker)
            to compute there; None: :meth:`_worker`'s, in this process.
    """

    def __init__(
        self, settings: Any, folder: Path, shard: tuple[int, int] = (1, 1), progress: bool = True, pool: Any = None
    ) -> None:
        self.settings, self.folder, self.shard, self.progress = settings, Path(folder), shard, progress
        self.pool = pool
        self.rows_folder = (
            self.folder if shard == (1, 1) else self.folder / "shards" / f"{shard[0]}-of-{shard[1]}"
        )

    bar_unit = "unit"  # what the progress bar counts
    ordered = False  # take the finished units in the order of the work items (else as they come)

    def run(self) -> dict:
        """Compute every unfinished unit of this shard under the run lock, after checking that the folder's rows
        belong to this run and removing those of unfinished units; returns the shard's status (also written, with
        the manifest, beside its rows). The summary and report over every shard present are the reporting
        layer's."""
        start = time.perf_counter()
        with run_lock(self.rows_folder):
            check_identity(self.folder, self.identity())
            expected = self.units()
            done = self.store.recover(expected)
            resumed = len(done)
            self._write_manifest({"status": "running", "shard": list(self.shard)})
            total = sum(self._unit_size(unit, rows) for unit, rows in expected.items())
            finished = sum(self._unit_size(unit, expected[unit]) for unit in done)
            bar = self._bar(total, finished)
            extra = self._compute(expected, done, bar)
            if bar is not None:
                bar.close()
            status = {
                "status": "complete",
                "shard": list(self.shard),
                "units": len(expected),
                "units_resumed": resumed,
                **self._inputs(),
                "run_seconds": time.perf_counter() - start,
            }
            status.update(extra)
            self._write_manifest(status)
        return status

    def units(self) -> dict[Hashable, int]:
        """The units of this shard, in the order of the run, and how many rows each finished one has."""
        raise NotImplementedError

    def _unit_size(self, unit: Hashable, rows: int) -> int:
        """How far a finished unit moves the progress bar (its rows unless a run counts otherwise)."""
        return rows

    def _compute(self, expected: dict, done: set, bar: Any) -> dict:
        """Every pending work item, here or on the pool, each finished unit handed to :meth:`_take` as it comes
        (so an interrupted run keeps it); returns :meth:`_totals` and, on a pool, the cluster's description."""
        work = self._work(expected, done)
        results = (self.pool or LocalPool(self._worker())).map_unordered(work)
        if self.ordered:
            results = in_order(results, [key for key, _, _ in work])
        for key, result in results:
            if isinstance(result, WorkFailed):
                result = self._given_up(key, result.reason, expected, done)
            for finished in result:
                self._take(key, finished, done, bar)
        extra = self._totals()
        if self.pool is not None:
            extra["cluster"] = self.pool.describe(f"{self.bar_unit}s")
        return extra

    def _work(self, expected: dict, done: set) -> list[tuple[Hashable, Any, int]]:
        """The pending work items: (key, item, size), the item what :meth:`_worker`'s ``load`` takes (picklable:
        it may go to a Ray worker) and the size its share of the load balance."""
        raise NotImplementedError

    def _worker(self) -> Any:
        """The work object computing an item in this process (a Ray worker builds its own)."""
        raise NotImplementedError

    def _take(self, key: Hashable, finished: Any, done: set, bar: Any) -> None:
        """Store one finished unit of item ``key``, add it to ``done`` and move ``bar`` (None: no bar)."""
        raise NotImplementedError

    def _given_up(self, key: Hashable, reason: str, expected: dict, done: set) -> list:
        """The finished units (as the worker's) that stand for the pending units of item ``key`` when a worker
        kept dying on it: their rows say ``reason``."""
        raise NotImplementedError

    def _totals(self) -> dict:
        """The run's own fields of the status, summed over the units taken."""
        return {}

    def _manifest(self, extra: dict) -> dict:
        """The manifest of this shard (:func:`cnnxai.outputs.build_manifest`), with the status fields ``extra``."""
        raise NotImplementedError

    def _inputs(self) -> dict:
        """The status's fields about this shard's inputs (e.g. its images, and those that could not be read)."""
        raise NotImplementedError

    def identity(self) -> dict:
        """What must be equal for rows to belong to the same run."""
        raise NotImplementedError

    def _write_manifest(self, extra: dict) -> None:
        self.rows_folder.mkdir(parents=True, exist_ok=True)
        write_json(self.rows_folder / "manifest.json", self._manifest(extra))

    def _bar(self, total: int, finished: int):
        if not self.progress or total == finished:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=total, initial=finished, desc=self.settings.tool, unit=self.bar_unit, dynamic_ncols=True
        )


class ImageFolderRun(ResumableRun):
    """What every run (or shard of a run) over an image folder has: its model, images, output folder and shard,
    where its rows go, its identity and its progress bar. A subclass sets ``self.mine`` (the image groups of this
    shard) too.

    Args:
        settings: a frozen dataclass of everything that decides the rows (its ``tool`` names the run).
        model, model_info: the classifier on its device and its zoo record (name, weights file and hash).
        dataset, images: what was found and the images drawn from it (see ``cnnxai.benchmark.data``).
        folder: the output folder; a shard writes its rows to ``folder/shards/<i>-of-<n>/``.
        shard: (i, n), 1-based; (1, 1) is the whole run.
        batch_size: inputs per forward pass for the explainers and metrics (None: from the device).
        selection: how the images were drawn (recorded in the identity).
        progress: show a progress bar; debug: let an explainer's error stop the run (else its rows say why).
        pool: as :class:`ResumableRun`'s (None: compute in this process, on ``model``).
    """

    def __init__(
        self,
        settings: Any,
        model: nn.Module,
        model_info: dict,
        dataset: Dataset,
        images: Sequence[BenchmarkImage],
        folder: Path,
        shard: tuple[int, int] = (1, 1),
        batch_size: int | None = None,
        selection: dict | None = None,
        progress: bool = True,
        debug: bool = False,
        pool: Any = None,
    ) -> None:
        super().__init__(settings, folder, shard, progress, pool)
        self.model, self.model_info = model, model_info
        self.dataset, self.images = dataset, list(images)
        self.batch_size, self.debug = batch_size, debug
        self.selection = dict(selection or {})
        self.device = module_device(model)

    @property
    def device_name(self) -> str:
        """Where the work runs, for the manifest: this process's device, or the Ray workers'."""
        return self.pool.device if self.pool is not None else str(self.device)


    def identity(self) -> dict:
        """What must be equal for rows to belong to the same run (device, batch size and progress may differ)."""
        return {
            "settings": json.loads(json.dumps(asdict(self.settings), default=json_fallback)),
            "model": {k: self.model_info.get(k) for k in ("model", "weights_sha256")},
            "data": {
                "layout": self.dataset.layout,
                "root": str(self.dataset.root.resolve()) if self.dataset.root else None,
                **self.selection,
                "images": len(self.images),
            },
            "shards": self.shard[1],
        }

    def _inputs(self) -> dict:
        return {"images": sum(len(group.images) for group in self.mine), "failures": self._failures()}

    def _failures(self) -> dict[str, str]:
        """Images of this shard that could not be read (from its rows, so a resumed run reports them too)."""
        rows = read_rows(self.store.scores_path, self.store.score_columns)
        return {row["image"]: row["reason"] for row in rows if row["reason"].startswith(UNREADABLE)}


def explanation_failed(error: Exception, label: str, key: str, debug: bool) -> str:
    """The reason an explanation of image ``key`` by ``label`` failed, warned on stderr, when the run can go on
    without it (:func:`cnnxai.devices.recover_from`: an error of the input, or CUDA out of memory); otherwise (or
    with ``debug``) ``error`` is raised again."""
    if debug or not recover_from(error):
        raise error
    reason = f"{label} failed on this image: {type(error).__name__}: {error}".splitlines()[0]
    print(f"warning: {key}: {reason}", file=sys.stderr)
    return reason


class GroupScorer:
    """Scores groups of images with explainers on one model: the work of a benchmark run, in this process or
    in a Ray worker (:mod:`cnnxai.distributed`). An item is ``(group, methods)``; :meth:`load` reads and crops
    its images (CPU only), :meth:`compute` explains and scores them, yielding one finished unit per method.

    Args:
        settings: the run's :class:`BenchmarkSettings`.
        model: the classifier on its device.
        batch_size: inputs per forward pass (None: from the device); debug: let an explainer's error stop the run.
        gallery: keys of the images whose maps a unit hands back too (for report.html's gallery: the maps are
            made anyway, so showing them costs no model work).
        cache: a folder of explanations and scores kept by content (:mod:`cnnxai.benchmark.cache`): what is
            there is read instead of computed, and what is computed is added (None: none).
    """

    def __init__(
        self,
        settings: BenchmarkSettings,
        model: nn.Module,
        batch_size: int | None = None,
        debug: bool = False,
        gallery: Collection[str] = (),
        cache: Path | None = None,
    ) -> None:
        self.settings, self.model, self.batch_size, self.debug = settings, model, batch_size, debug
        self.gallery = frozenset(gallery)
        self.device = next(iter(model.parameters())).device
        self.cache = None if cache is None else ResultCache(cache, model, settings.tf32)

    def load(self, item: tuple[ImageGroup, Sequence[str]]) -> tuple[ImageGroup, Sequence[str], dict]:
        group, methods = item
        return group, methods, {image.key: self._read(image) for image in group.images}

    def compute(self, loaded: tuple[ImageGroup, Sequence[str], dict]) -> Iterator[UnitRows]:
        """Each method's unit of the group in turn: ``(method, score rows, curve rows, explainer seconds,
        gallery maps, maps and scores read from the cache)``."""
        group, methods, prepared = loaded
        for image in group.images:
            self._prepare(prepared[image.key])
        for method in methods:
            yield self._unit(group, method, prepared)

    def _read(self, image: BenchmarkImage) -> PreparedImage:
        try:
            frame = to_model_frame(image.load(), self.settings.preprocess, self.settings.resize, self.settings.frame_size)
        except UserInputError as error:
            print(f"error: {error}", file=sys.stderr)
            return PreparedImage(image, error=f"{UNREADABLE}: {error}")
        return PreparedImage(image, frame=frame)

    def _prepare(self, item: PreparedImage) -> None:
        if item.error or item.metrics is not None:
            return
        settings = self.settings
        target = item.image.true_class if settings.target == "true" else None
        item.session = ImageSession(self.model, item.frame, tf32=settings.tf32)
        item.metrics = ImageMetrics.of(
            item.session, target, settings.metric_settings, seed=settings.seed, key=item.image.key,
            feature_unit=settings.feature_unit, batch_size=self.batch_size,
        )  # fmt: skip

    def _unit(self, group: ImageGroup, method: str, prepared: dict[str, PreparedImage]) -> UnitRows:
        """Score one explainer on one group: (method, score rows, curve rows, explainer seconds per image, the
        maps of the group's gallery images, the maps and scores read from the cache)."""
        settings = self.settings
        before = dict(self.cache.reused) if self.cache is not None else {}
        per_image = [m for m in settings.metrics if not METRICS[m].batch_level]
        results: dict[str, dict[str, MetricResult]] = {}
        maps: dict[str, np.ndarray] = {}
        seconds: dict[str, float] = {}
        samples: dict[str, int] = {}  # perturbed images an explanation used (the LIME family and KernelSHAP)
        for image in group.images:
            item = prepared[image.key]
            if item.error:
                results[image.key] = {m: undefined(item.error) for m in settings.metrics}
                continue
            key = None if self.cache is None else self.cache.map_key(
                item.frame, item.metrics.target, settings.seed, method, settings.explainer_options[method]
            )  # fmt: skip
            found = None if key is None else self.cache.get_map(key)
            if found is None:
                start = time.perf_counter()
                try:
                    attribution = explain(
                        method, self.model, item.frame, item.metrics.target, seed=settings.seed,
                        device=self.device, batch_size=self.batch_size, session=item.session, tf32=settings.tf32,
                        **settings.explainer_options[method],
                    )  # fmt: skip
                # UserInputError is a ValueError; CUDA's errors are RuntimeErrors
                except (ValueError, RuntimeError) as error:
                    reason = explanation_failed(error, method, image.key, self.debug)
                    results[image.key] = {m: undefined(reason) for m in settings.metrics}
                    continue
                found = attribution.map, time.perf_counter() - start, attribution.extras.get("forwards")
                if key is not None:
                    self.cache.put_map(key, *found)
            raw, seconds[image.key], forwards = found
            if forwards is not None:
                samples[image.key] = int(forwards)
            maps[image.key] = postprocess(raw, settings.attribution)
            results[image.key] = self._score(item, key, maps[image.key], per_image)
        if "Sufficiency" in settings.metrics:
            self._sufficiency(group, maps, prepared, results)
        shown = {key: (prepared[key].frame, maps[key], int(prepared[key].metrics.target))
                 for key in maps if key in self.gallery}  # fmt: skip
        reused = {kind: count - before[kind] for kind, count in self.cache.reused.items()} if before else {}
        return method, *unit_rows(settings, group, method, prepared, results, seconds, samples), shown, reused

    def _score(
        self, item: PreparedImage, map_key: str | None, scored: np.ndarray, metrics: list[str]
    ) -> dict[str, MetricResult]:
        """The per-image ``metrics`` of one map as scored (H,W): those the cache holds read, the rest computed
        (and added to the cache)."""
        if self.cache is None:
            return item.metrics.score(scored, metrics)
        settings = self.settings
        keys = {
            m: self.cache.score_key(map_key, scored, item.image.key, m,
                                    {"settings": settings.metric_settings[m], "feature_unit": settings.feature_unit})
            for m in metrics
        }  # fmt: skip
        results = self.cache.get_scores(keys)
        missing = [m for m in metrics if m not in results]
        if missing:
            computed = item.metrics.score(scored, missing)
            self.cache.put_scores(keys, computed)
            results.update(computed)
        return results

    def _sufficiency(self, group, maps, prepared, results) -> None:
        keys = [image.key for image in group.images if image.key in maps]
        start = time.perf_counter()
        threshold = float(self.settings.metric_settings["Sufficiency"]["threshold"])
        scores = sufficiency(
            [maps[k] for k in keys], [prepared[k].metrics.predicted for k in keys], threshold
        )
        share = (time.perf_counter() - start) / max(len(keys), 1)  # group work, split evenly over its images
        for key, result in zip(keys, scores, strict=True):
            results[key]["Sufficiency"] = MetricResult(result.value, result.reason, seconds=share)


def unit_rows(
    settings: BenchmarkSettings, group, method, prepared, results, seconds=None, samples=None
) -> tuple[list[dict], list[dict], list[float]]:
    """The rows of one finished unit: (score rows, curve rows, explainer seconds per image)."""
    seconds, samples = seconds or {}, samples or {}
    scores, curves = [], []
    for image in group.images:
        item = prepared[image.key]
        scored = item.metrics is not None
        common = {
            "image": image.key,
            "group": group.index,
            "true_class": "" if image.true_class is None else image.true_class,
            "predicted_class": item.metrics.predicted if scored else "",
            "target_class": item.metrics.target if scored else "",
            "method": method,
            "seed": settings.seed,
            "explain_seconds": repr(seconds.get(image.key, float("nan"))),
            "samples": samples.get(image.key, ""),
        }
        for metric in settings.metrics:
            result = results[image.key][metric]
            scores.append({**common, "metric": metric, "value": repr(float(result.value)),
                           "reason": result.reason, "seconds": repr(result.seconds)})  # fmt: skip
            if metric in CURVE_METRICS and result.curve is not None:
                curves.append({"image": image.key, "group": group.index, "method": method, "curve": metric,
                               "auc": repr(float(result.value)),
                               "values": " ".join(repr(float(v)) for v in result.curve)})  # fmt: skip
    return scores, curves, list(seconds.values())


def scorer_in_worker(
    settings: BenchmarkSettings, load: Callable[[torch.device], tuple[nn.Module, dict]], batch_size: int | None,
    debug: bool, device: str, gallery: Collection[str] = (), cache: Path | None = None,
) -> GroupScorer:  # fmt: skip
    """A :class:`GroupScorer` built inside a Ray worker on ``device`` ('cuda': its own GPU), with the model
    loaded there by ``load(device)`` (e.g. a partial of :func:`cnnxai.zoo.load_model`); ``gallery`` the keys
    of the images whose maps come back with the rows (:func:`gallery_keys`); ``cache`` the run's cache folder
    (on a file system the workers share)."""
    model, _ = load(resolve_device(device))
    return GroupScorer(settings, model, batch_size, debug, gallery, cache)


def gallery_keys(images: Sequence[BenchmarkImage], count: int) -> list[str]:
    """The images of report.html's gallery: the first ``count`` of the run (the same in every shard)."""
    return [image.key for image in images[:count]]


def gallery_title(key: str, target: int, num_classes: int = 1000) -> str:
    """A gallery image's caption: its key and the class explained, by ImageNet name for a model of the 1000
    ImageNet classes (every zoo model), else by index."""
    names = imagenet_class_names() if num_classes == 1000 else []
    return f"{key}: {names[target]} ({target})" if 0 <= target < len(names) else f"{key}: class {target}"


class BenchmarkRun(ImageFolderRun):
    """One run (or one shard of it) of a benchmark into ``folder``; the arguments as :class:`ImageFolderRun`'s,
    with ``settings`` a :class:`BenchmarkSettings`, and ``pool`` a :class:`~cnnxai.distributed.WorkerPool`
    of :func:`scorer_in_worker` to compute on Ray (None: in this process, on ``model``). The maps of the first
    ``report_images`` images are kept in ``gallery/`` beside the rows, and report.html shows them. ``cache``: a
    folder of explanations and scores kept by content (:mod:`cnnxai.benchmark.cache`; a Ray pool's scorers
    must be given the same folder)."""

    def __init__(
        self, settings: BenchmarkSettings, *args: Any, report_images: int = DEFAULT_REPORT_IMAGES,
        cache: Path | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(settings, *args, **kwargs)
        self.cache = None if cache is None else Path(cache).resolve()
        check_sizes(settings.metric_settings, (3, settings.frame_size, settings.frame_size), settings.feature_unit)
        self.groups = make_groups(self.images, settings.group_size, settings.seed)
        self.mine = shard_groups(self.groups, self.shard)
        self.store = ResultStore(self.rows_folder)
        self.report_images = report_images
        self.gallery = gallery_keys(self.images, report_images)
        self.explain_seconds: dict[str, list[float]] = {m: [] for m in settings.methods}
        self.cache_reads = {"maps": 0, "scores": 0}

    bar_unit = "map"

    def _manifest(self, extra: dict) -> dict:
        return build_manifest(
            f"{self.settings.tool}.py", ("captum", "zennit", "quantus", "tqdm"),
            identity=self.identity(), seed=self.settings.seed,
            model={**self.model_info, "device": self.device_name},
            batch_size=self.batch_size,
            metrics={
                name: {"direction": METRICS[name].direction, "family": METRICS[name].family,
                       "params": self.settings.metric_settings[name], "definition": METRICS[name].description}
                for name in self.settings.metrics
            },
            methods={name: REGISTRY[name].description for name in self.settings.methods},
            **extra,
        )  # fmt: skip

    # -- the run's units: (group index, method), computed by a GroupScorer here or on the Ray pool ----------

    def units(self) -> dict[tuple[int, str], int]:
        """Score rows expected of each unit (image group, method) of this shard: images x metrics."""
        rows = len(self.settings.metrics)
        return {(g.index, m): len(g.images) * rows for g in self.mine for m in self.settings.methods}

    def _unit_size(self, unit: tuple[int, str], rows: int) -> int:
        return len(self.groups[unit[0]].images)  # the bar counts maps (a group's index is its place)

    def _work(self, expected: dict, done: set) -> list[tuple[int, tuple[ImageGroup, list[str]], int]]:
        work = []
        for group in self.mine:
            pending = [m for m in self.settings.methods if (group.index, m) not in done]
            if pending:
                work.append((group.index, (group, pending), len(group.images) * len(pending)))
        return work

    def _worker(self) -> GroupScorer:
        return GroupScorer(self.settings, self.model, self.batch_size, self.debug, self.gallery, self.cache)

    def _take(self, index: int, finished: UnitRows, done: set, bar: Any) -> None:
        method, scores, curves, seconds, shown, reused = finished
        self.store.append(scores, curves)
        for kind, count in reused.items():
            self.cache_reads[kind] += count
        self._keep_maps(method, shown)
        done.add((index, method))
        self.explain_seconds[method] += seconds
        if bar is not None:
            bar.update(len(self.groups[index].images))

    def _given_up(self, index: int, reason: str, expected: dict, done: set) -> list[UnitRows]:
        """NaN rows for each pending unit of a group whose worker kept dying on it."""
        group = self.groups[index]
        results = []
        for method in [m for m in self.settings.methods if (index, m) not in done]:
            prepared = {image.key: PreparedImage(image, error=reason) for image in group.images}
            scored = {image.key: {m: undefined(reason) for m in self.settings.metrics} for image in group.images}
            print(f"warning: group {group.index} {method}: {reason}", file=sys.stderr)
            results.append((method, *unit_rows(self.settings, group, method, prepared, scored), {}, {}))
        return results

    def _totals(self) -> dict:
        extra: dict[str, Any] = {
            "mean_explain_seconds": {m: float(np.mean(s)) for m, s in self.explain_seconds.items() if s}
        }
        if self.cache is not None:
            extra["cache"] = {"folder": str(self.cache), "maps_read": self.cache_reads["maps"],
                              "scores_read": self.cache_reads["scores"]}  # fmt: skip
        return extra

    def _keep_maps(self, method: str, shown: dict[str, Shown]) -> None:
        """Add a finished unit's maps of gallery images to ``gallery/`` beside its rows (after the rows: a
        killed run may lack a map in the report, never a row)."""
        for key, (frame, attribution, target) in shown.items():
            save_gallery_maps(self.rows_folder, key, self.gallery.index(key), frame, {method: attribution},
                              title=gallery_title(key, target, self.model_info.get("num_classes", 1000)))  # fmt: skip
