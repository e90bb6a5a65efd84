"""What a run over an image folder is asked for, and the benchmark run it makes: the library side of
MyFaithfulness.py and MyComplexity.py (and of MyStability.py's folder), frozen and picklable, made by the command
lines from their flags, so that nothing below them reads an argparse object.

:class:`FolderRequest` is what every run over a folder needs beside the settings that decide its rows (the images,
the output folder and shard, the model and how it runs); :class:`BenchmarkRequest` adds a benchmark's explainers
and metrics; :func:`benchmark_run` loads the model and makes the
:class:`~cnnxai.benchmark.runner.BenchmarkRun` (:func:`cnnxai.reporting.benchmark.run_benchmark` runs it and
writes the summary); :class:`RunStatus` is how a run ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from cnnxai.benchmark.data import BenchmarkImage, Dataset, discover, imagenet_wnids, select
from cnnxai.benchmark.gallery import DEFAULT_REPORT_IMAGES
from cnnxai.benchmark.runner import BenchmarkRun, BenchmarkSettings, gallery_keys, scorer_in_worker
from cnnxai.distributed import RaySettings
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY
from cnnxai.registry import fill_alias, takes_alias
from cnnxai.zoo import LoadedModel, ModelRequest, load_classifier, load_classifier_model


@dataclass(frozen=True)
class FolderRequest:
    """How a run over an image folder is done, beside the settings that decide its rows.

    ``data_dir``: an ImageNet-validation folder or a flat folder (None: the built-in sample photos), of which
    ``num_classes`` classes and ``per_class`` images each are drawn with the run's seed (None: all);
    ``output_dir`` the run's folder and ``shard`` (i, n) the part computed here; ``model`` the classifier, loaded
    on ``device``; ``batch_size`` inputs per forward (None: from the device); ``overwrite`` deletes an earlier
    run's files first; ``debug`` lets an explainer's error stop the run; ``quiet``: no progress bars.
    """

    output_dir: str
    data_dir: str | None = None
    num_classes: int | None = None
    per_class: int | None = None
    shard: tuple[int, int] = (1, 1)
    model: ModelRequest = field(default_factory=ModelRequest)
    device: str = "auto"
    batch_size: int | None = None
    overwrite: bool = False
    debug: bool = False
    quiet: bool = False

    @property
    def folder(self) -> Path:
        return Path(self.output_dir)

    def selection(self, dataset: Dataset) -> dict:
        """What was drawn from the image folder (part of a run's identity)."""
        return {"num_classes": self.num_classes, "per_class": self.per_class, "classes": len(dataset.classes)}

    def load(self, device: torch.device, need_layers: bool) -> LoadedModel:
        """The model on ``device`` (:func:`cnnxai.zoo.load_classifier`), its CAM layers when ``need_layers``."""
        return load_classifier(self.model, device, need_layers, not self.quiet)


@dataclass(frozen=True)
class BenchmarkRequest:
    """Everything a run of MyFaithfulness.py or MyComplexity.py reads: its ``settings`` but for what the model
    decides, filled in once it is loaded (the explainers' CAM layers, into ``explainer_options``: the options given
    to each method; ``frame_size`` and ``resize``), the ``folder`` run, ``ray`` (compute on Ray workers; None:
    here), ``cache`` (a folder of maps and scores kept by content, :mod:`cnnxai.benchmark.cache`),
    ``report_images`` (the images whose maps report.html shows) and ``baseline`` (the method of the summary's
    paired comparisons; None: lime, or the first method).
    """

    settings: BenchmarkSettings
    folder: FolderRequest
    explainer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    ray: RaySettings | None = None
    cache: Path | None = None
    report_images: int = DEFAULT_REPORT_IMAGES
    baseline: str | None = None


@dataclass(frozen=True)
class RunStatus:
    """How a run (or shard) over an image folder ended: its ``folder``, the ``rows_folder`` it wrote, and the
    ``status`` :meth:`~cnnxai.benchmark.runner.ResumableRun.run` returned (and wrote in the manifest)."""

    folder: Path
    rows_folder: Path
    status: Mapping[str, Any]

    @property
    def failures(self) -> dict[str, str]:
        """The images that could not be read, with the reason."""
        return dict(self.status["failures"])

    @property
    def exit_status(self) -> int:
        """0, or 1 when some image could not be read."""
        return 1 if self.status["failures"] else 0


def benchmark_images(request: BenchmarkRequest) -> tuple[Dataset, list[BenchmarkImage]]:
    """The images of the run: the folder found and those drawn from it with the seed."""
    folder, settings = request.folder, request.settings
    dataset = discover(folder.data_dir)
    if settings.target == "true" and dataset.layout != "imagenet":
        raise UserInputError(
            f"--target true needs class folders named by WordNet id; this is a {dataset.layout} input"
        )
    return dataset, select(dataset, folder.num_classes, folder.per_class, settings.seed)


def benchmark_run(
    request: BenchmarkRequest, dataset: Dataset, images: list[BenchmarkImage], device: torch.device,
    pool: Any = None,
) -> BenchmarkRun:  # fmt: skip
    """The run of ``request`` over ``images``: the model loaded on ``device`` (its layers filling the methods'
    CAM layers), the :class:`~cnnxai.benchmark.runner.BenchmarkSettings`, and ``pool`` (a
    :class:`~cnnxai.distributed.WorkerPool`, or None: compute here) given the scorers of the run."""
    folder = request.folder
    loaded = folder.load(device, takes_alias(REGISTRY, request.settings.methods, "layers"))
    if request.settings.target == "true" and len(loaded.info.class_names) != len(imagenet_wnids()):
        raise UserInputError(f"--target true takes the ImageNet class of each folder; --model {folder.model.source} "
                             f"has {len(loaded.info.class_names)} outputs, not {len(imagenet_wnids())}")  # fmt: skip
    options = {method: dict(request.explainer_options.get(method, {})) for method in request.settings.methods}
    fill_alias(options, REGISTRY, "layers", list(loaded.layers))
    settings = replace(request.settings, explainer_options=options, frame_size=loaded.info.input_size,
                       resize=loaded.info.resize)  # fmt: skip
    # Absolute, so that a Ray worker started in another folder finds the same cache.
    cache = None if request.cache is None else Path(request.cache).resolve()
    if pool is not None:
        load = partial(load_classifier_model, folder.model)
        gallery = gallery_keys(images, request.report_images)
        pool.using(partial(scorer_in_worker, settings, load, folder.batch_size, folder.debug, gallery=gallery,
                           cache=cache))  # fmt: skip
    return BenchmarkRun(
        settings, loaded.model, loaded.manifest, dataset, images, folder.folder, folder.shard, folder.batch_size,
        folder.selection(dataset), progress=not folder.quiet, debug=folder.debug, pool=pool,
        report_images=request.report_images, cache=cache,
    )  # fmt: skip
