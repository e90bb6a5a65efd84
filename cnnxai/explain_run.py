"""Explaining images with GradLIME or CamLIME (and the explainers compared with it): the run behind GradLIME.py,
CamLIME.py and :func:`cnnxai.reporting.explain.explain_to_folder`, which writes what this computes.

:class:`ExplainSettings` is everything a run reads (frozen and picklable: Ray workers get it as it is);
:class:`ExplainRun` loads the model once and explains one image at a time into an :class:`ExplainedImage`, data
only (the result, the compared maps, the manifest sections), so that its writer lives above the runs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cam_ext import CAM_METHODS, CamSettings, cam_refusal
from cnnxai.devices import resolve_device
from cnnxai.distributed import RaySettings
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY, CamLimeResult, explain, explain_image
from cnnxai.explainers.lime_family import VARIANTS
from cnnxai.images import SAMPLE_IMAGES, find_images, sample_image
from cnnxai.preprocess import to_model_frame
from cnnxai.registry import fill_alias
from cnnxai.session import ImageSession
from cnnxai.targets import TargetScore
from cnnxai.tasks.explain import Choice, Selection, explain_task
from cnnxai.tasks.models import TASK_MODELS, task_frame, task_model_spec, task_sample
from cnnxai.zoo import MODEL_FORMS, ModelRequest, choose_layers, load_classifier


@dataclass(frozen=True)
class TaskRequest:
    """What ``--task`` asks for: the ``task`` (detection, segmentation or face), its ``model`` (a name of
    :data:`cnnxai.tasks.models.TASK_MODELS`; None: the task's own) and what to explain on it (``choice``: a box,
    a class's region, a face; the default: the first). The weights and CAM layers are those of
    :attr:`ExplainSettings.model`."""

    task: str
    model: str | None = None
    choice: Choice = Choice()


@dataclass(frozen=True)
class ExplainSettings:
    """Everything a run of GradLIME (``variant='gradlime'``) or CamLIME (``'camlime'``) reads.

    ``options``: each explainer's given options, by name (the variant and each of ``compare``; a missing one
    takes the explainer's defaults; the CAM layers, and for a task its segmenter and CAM method, are filled in
    from the model when not given). ``image_path``: a file, a folder (walked recursively) or None (the built-in
    sample); the outputs go to ``<output_dir>/<image>/``. ``model``: the classifier (its weights and layers also
    serve a ``task``). ``target`` None explains the top prediction; ``top_labels`` the k best. ``batch_size``
    None: chosen by the device. ``ray``: compute a folder on Ray workers. ``quiet``: no progress bars, one line
    per image. ``record``: the options written as the manifest's "options" (the command line's; default: these
    settings).
    """

    variant: str = "gradlime"
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    compare: tuple[str, ...] = ()
    image_path: str | None = None
    output_dir: str = "results"
    model: ModelRequest = field(default_factory=ModelRequest)
    task: TaskRequest | None = None
    device: str = "auto"
    preprocess: str = "crop"
    target: int | None = None
    top_labels: int = 1
    num_features: int = 20
    seed: int = 0
    batch_size: int | None = None
    amp: bool = False
    tf32: bool = False
    ray: RaySettings | None = None
    quiet: bool = False
    record: Mapping[str, Any] | None = None

    @property
    def title(self) -> str:
        """'GradLIME' or 'CamLIME'."""
        return VARIANTS[self.variant]

    def manifest_options(self) -> dict[str, Any]:
        """The manifest's "options": :attr:`record`, else these settings."""
        if self.record is not None:
            return dict(self.record)
        return {name: value for name, value in dataclasses.asdict(self).items() if name != "record"}


@dataclass
class ExplainedImage:
    """One image explained: ``result`` (the variant's, with plain LIME on the same perturbations), ``compare``
    (each other explainer's map (H,W) in the model-input frame), ``class_names`` (of the model, or for a task the
    one explained score's name), ``selection`` (a task's chosen box, region or face; None for a class),
    ``manifest`` (this run's manifest sections for it), ``source`` (the file, or 'sample:NAME') and ``name`` (its
    output folder's name)."""

    result: CamLimeResult
    compare: dict[str, np.ndarray]
    class_names: list[str]
    selection: Selection | None
    manifest: dict[str, Any]
    source: str
    name: str


def output_name(path: Path, root: Path | None) -> str:
    """The output folder name: the file stem, or for folders the relative path with '/' -> '__'."""
    relative = path.relative_to(root) if root is not None else Path(path.name)
    return "__".join(relative.with_suffix("").parts)


def run_inputs(image_path: str | None) -> tuple[list[Path | None], Path | None, bool]:
    """(images, root folder or None, is_folder). None stands for the built-in sample photo."""
    if image_path is None:
        return [None], None, False
    path = Path(image_path)
    if path.is_dir():
        return list(find_images(path)), path, True
    if not path.exists():
        raise UserInputError(
            f"--image-path {path}: no such file or folder; give an image file or a folder of images"
        )
    return [path], None, False


class ExplainRun:
    """Everything loaded once for a run over images: the explainers' options, device, model, layers, names; for
    a task, the task model whose chosen score (a box, a region, a face) each image is explained for."""

    def __init__(self, settings: ExplainSettings) -> None:
        self.settings = s = settings
        self.methods = list(dict.fromkeys([s.variant, *s.compare]))
        request = s.task
        self.task = None if request is None else task_model_spec(request.task, request.model)
        self.options = {method: dict(s.options.get(method, {})) for method in self.methods}
        if s.variant == "camlime":
            self.options["camlime"].setdefault(
                "method", self.task.cam_method if self.task is not None else CamSettings.method
            )
        for method in self.methods:  # every value checked now, before any work
            REGISTRY.options(method, self.options[method])
        self.device = resolve_device(s.device)
        start = time.perf_counter()
        if self.task is None:
            model_name = s.model.source
            if model_name in TASK_MODELS:
                raise UserInputError(f"--model {model_name} is a {TASK_MODELS[model_name].task} model; add --task "
                                     f"{TASK_MODELS[model_name].task}, or choose a classifier: {MODEL_FORMS}")  # fmt: skip
            loaded = load_classifier(s.model, self.device, progress=not s.quiet)
            self.class_names = list(loaded.info.class_names)
            if s.target is not None and s.target >= len(self.class_names):
                raise UserInputError(
                    f"--target {s.target} is out of range: the model has {len(self.class_names)} classes (0..{len(self.class_names) - 1})"
                )
            for method in [self.options.get("camlime", {}).get("method"), *s.compare]:
                reason = cam_refusal(method, loaded.model) if method in CAM_METHODS else None
                if reason:
                    raise UserInputError(reason)
            self.model, self.layers, self.model_info = loaded.model, list(loaded.layers), loaded.manifest
            self.frame_size, self.resize = loaded.info.input_size, loaded.info.resize
        else:
            self.model, self.model_info = self.task.load(s.model.weights, self.device)
            self.class_names = self.task.class_names()
            # The explainers see the task model inside a TargetScore, where its modules live under 'task.'.
            self.layers = TargetScore.layer_names(
                choose_layers(self.model, list(s.model.layers) or None, self.task.layers)
            )
        self.load_s = time.perf_counter() - start
        fill_alias(self.options, REGISTRY, "layers", self.layers)
        if self.task is not None and self.task.segmenter is not None:
            fill_alias(self.options, REGISTRY, "segmenter", self.task.segmenter)

    def sample(self) -> tuple[str, np.ndarray]:
        """(name, image) of the built-in sample: the cat photo, or the task model's own sample."""
        if self.task is None:
            return SAMPLE_IMAGES[0], sample_image(SAMPLE_IMAGES[0])
        return task_sample(self.task)

    def explain(self, image: np.ndarray, source: str, name: str) -> ExplainedImage:
        """Explain one loaded image (RGB uint8 (H,W,3)) with the variant and every compared explainer, on the
        same perturbations; ``source`` and ``name`` are recorded."""
        s = self.settings
        selection = None
        start = time.perf_counter()
        if self.task is None:
            frame = to_model_frame(image, s.preprocess, self.resize, self.frame_size)
            class_names = self.class_names
            framing = {"preprocess": s.preprocess, "frame_size": self.frame_size, "resize": self.resize}
            model = self.model
            # this image's prediction, neighbourhood and CAMs, reused by the compared explainers
            session = ImageSession(model, frame, s.amp, s.tf32)
            result = explain_image(
                s.variant, model, frame, s.target, s.top_labels, s.seed, self.device, s.batch_size,
                session, s.amp, progress=not s.quiet, tf32=s.tf32, **self.options[s.variant],
            )  # fmt: skip
        else:
            frame = task_frame(image, self.task.frame)
            explained = explain_task(
                s.variant, self.task, self.model, frame, s.task.choice, s.seed, self.device, s.batch_size,
                s.amp, progress=not s.quiet, tf32=s.tf32, **self.options[s.variant],
            )  # fmt: skip
            selection, model, result, session = (
                explained.selection,
                explained.model,
                explained.result,
                explained.session,
            )
            class_names = [selection.name]
            framing = {"frame_size_wh": [int(frame.shape[1]), int(frame.shape[0])]}
        compare = {
            name: explain(name, model, frame, result.target, s.seed, self.device, s.batch_size, session,
                          tf32=s.tf32, **self.options[name]).map
            for name in s.compare
        }  # fmt: skip
        explain_s = time.perf_counter() - start
        task_section = {} if selection is None else {"task": {"task": s.task.task, **selection.record}}
        manifest = {
            "options": s.manifest_options(), "seed": s.seed, **task_section,
            "image": {"source": source, "original_size_wh": [int(image.shape[1]), int(image.shape[0])], **framing},
            "model": {**self.model_info, "device": str(self.device), "amp": bool(s.amp and self.device.type == "cuda"),
                      "tf32": bool(s.tf32 and self.device.type == "cuda")},
            "explainers": {m: REGISTRY.options(m, self.options[m]) for m in self.methods},
            "timings": {"model_load_s": self.load_s, "explain_s": explain_s, **result.timings},
        }  # fmt: skip
        return ExplainedImage(result, compare, class_names, selection, manifest, source, name)
