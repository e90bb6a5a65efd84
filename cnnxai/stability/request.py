"""What a MyStability.py run is asked for (:class:`StabilityRequest`, frozen and picklable, made by the command line
from its flags) and the run it makes (:func:`stability_run`); :func:`cnnxai.reporting.stability.run_stability`
runs it and writes the summary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch

from cnnxai.benchmark.data import BenchmarkImage, Dataset, discover, select
from cnnxai.benchmark.request import FolderRequest
from cnnxai.distributed import RaySettings
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY
from cnnxai.registry import fill_alias, takes_alias
from cnnxai.stability.runner import StabilityRun, StabilitySettings, stability_in_worker
from cnnxai.stability.specs import BASELINE, MethodSpec, resolve_methods
from cnnxai.zoo import load_classifier_model


@dataclass(frozen=True)
class StabilityRequest:
    """Everything a MyStability.py run reads: the method ``specs``, the ``options`` given to each explainer name of
    the run (the specs' and plain lime's; the CAM layers are filled in from the model), its ``settings`` but for
    what the model decides, filled in once it is loaded (``methods``: the specs resolved, plain lime at
    ``match_samples`` among them; ``reference_options``; ``frame_size`` and ``resize``; leave them at ``()``,
    ``{}`` and the defaults), the ``folder`` run: the images, output folder, shard, model and how it runs, and
    ``ray`` (compute on Ray workers; None: here)."""

    specs: tuple[MethodSpec, ...]
    options: Mapping[str, Mapping[str, Any]]
    settings: StabilitySettings
    folder: FolderRequest
    ray: RaySettings | None = None


def stability_images(request: StabilityRequest) -> tuple[Dataset, list[BenchmarkImage]]:
    """The folder found and the images drawn from it with the seed (none is a one-line error)."""
    folder = request.folder
    dataset = discover(folder.data_dir)
    images = select(dataset, folder.num_classes, folder.per_class, request.settings.seed)
    if not images:
        raise UserInputError(f"--data-dir {folder.data_dir}: no images found")
    return dataset, images


def stability_run(
    request: StabilityRequest, dataset: Dataset, images: list[BenchmarkImage], device: torch.device, pool: Any = None
) -> StabilityRun:
    """The run of ``request`` over ``images``: the model loaded on ``device`` (its layers filling the methods' CAM
    layers), every method resolved with plain lime at ``match_samples`` among them, the reference's options, and
    ``pool`` (a :class:`~cnnxai.distributed.WorkerPool`, or None: compute here) given the run's work."""
    folder = request.folder
    # Each explainer name of the run, and plain lime's (the reference and the baseline).
    names = dict.fromkeys([spec.name for spec in request.specs] + [BASELINE])
    base = {name: dict(request.options.get(name, {})) for name in names}
    loaded = folder.load(device, takes_alias(REGISTRY, list(base), "layers"))
    fill_alias(base, REGISTRY, "layers", list(loaded.layers))
    settings = request.settings
    methods = resolve_methods(request.specs, base, settings.grid, settings.match_samples, REGISTRY)
    reference = REGISTRY.options(BASELINE, {k: v for k, v in base[BASELINE].items() if k != "num_samples"})
    reference.pop("num_samples")
    settings = replace(settings, methods=tuple(methods), reference_options=reference,
                       frame_size=loaded.info.input_size, resize=loaded.info.resize)  # fmt: skip
    if pool is not None:
        load = partial(load_classifier_model, folder.model)
        pool.using(partial(stability_in_worker, settings, load, folder.batch_size, folder.debug))
    return StabilityRun(
        settings, loaded.model, loaded.manifest, dataset, images, folder.folder, folder.shard, folder.batch_size,
        folder.selection(dataset), progress=not folder.quiet, debug=folder.debug, pool=pool,
    )  # fmt: skip
