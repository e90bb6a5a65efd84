"""The task models: detectors, segmenters and the face detector the applications explain.

Each entry knows its task, how it is loaded (embedded, trained and cached, or torchvision from a local weights
file as the classifiers are), what input it takes, its class names, its default CAM layer(s) and the side of its
frame. The synthetic ``shapes_detector`` and ``shapes_segmenter`` (trained in about a minute on a CPU on the
scenes of :mod:`cnnxai.synthetic.scenes`, then cached) and the MTCNN face detector (its weights ship inside the
facenet-pytorch wheel) need nothing from the network; torchvision's COCO models need ``--weights FILE`` or the
file in torch's cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from cam_ext import CamSettings
from cnnxai.errors import UserInputError
from cnnxai.images import sample_image
from cnnxai.options import Option, close_matches
from cnnxai.registry import Registry
from cnnxai.synthetic.scene_models import (
    DETECTOR_CAM_LAYER,
    SEGMENTATION_CLASSES,
    SEGMENTER_CAM_LAYER,
    load_shapes_detector,
    load_shapes_segmenter,
)
from cnnxai.synthetic.scenes import CLASSES, SceneSettings, make_scenes
from cnnxai.tasks.face import FACE_CAM_LAYER, load_face_detector, portrait
from cnnxai.zoo import file_sha256, load_state

TASKS = ("classification", "detection", "segmentation", "face")
# CamLIME's CAM for a box or a face: one score at one place, whose gradient Grad-CAM pools over the whole map (so
# every object with the same features lights up, or, after the ReLU, nothing does); the element-wise CAM keeps the
# evidence where the gradient is (docs/applications.md#which-cam). Other tasks: CamSettings.method (Grad-CAM).
TASK_CAM_METHODS = {"detection": "gradcamelementwise", "face": "gradcamelementwise"}

Loader = Callable[[str | None, torch.device], tuple[nn.Module, dict]]


@dataclass(frozen=True)
class TaskModelSpec:
    """One task model. ``layers``: default CAM layers (module paths of the task model); ``input_space``: 'unit'
    ([0,1] RGB) or 'imagenet' (normalised); ``frame``: the longest side of the frame an image is resized to
    (aspect kept, never cropped: a detection or a region may be anywhere); ``segmenter``: the LIME family's
    superpixels for this model's images when not given (None: the explainers' own, quickshift)."""

    name: str
    task: str
    layers: tuple[str, ...]
    input_space: str
    frame: int
    description: str
    load: Loader
    class_names: Callable[[], list[str]]
    segmenter: str | None = None
    options: tuple[Option, ...] = ()  # none: a task model is built as it is

    @property
    def cam_method(self) -> str:
        """CamLIME's CAM method for this model when none is given (see TASK_CAM_METHODS)."""
        return TASK_CAM_METHODS.get(self.task, CamSettings.method)


def _shapes_detector(weights: str | None, device: torch.device) -> tuple[nn.Module, dict]:
    _refuse_weights("shapes_detector", weights)
    model, info = load_shapes_detector()
    return model.to(device).eval(), {"model": "shapes_detector", **info}


def _shapes_segmenter(weights: str | None, device: torch.device) -> tuple[nn.Module, dict]:
    _refuse_weights("shapes_segmenter", weights)
    model, info = load_shapes_segmenter()
    return model.to(device).eval(), {"model": "shapes_segmenter", **info}


def _mtcnn(weights: str | None, device: torch.device) -> tuple[nn.Module, dict]:
    _refuse_weights("mtcnn", weights)
    return load_face_detector(device)


def _refuse_weights(name: str, weights: str | None) -> None:
    if weights is not None:
        raise UserInputError(f"--weights does not apply to {name} (its weights are built in); drop --weights")


def _torchvision_meta(name: str) -> dict:
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT.meta


def torchvision_task_loader(name: str, **build: object) -> Loader:
    """A loader of torchvision's ``name`` with its default (COCO) weights from ``--weights FILE`` or torch's cache."""

    def load(weights: str | None, device: torch.device) -> tuple[nn.Module, dict]:
        import torchvision.models as tvm
        from torchvision.models import get_model_weights

        url = get_model_weights(name).DEFAULT.url
        cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        path = Path(weights) if weights is not None else cached
        if not path.is_file():
            where = (
                f"--weights {path}: no such file"
                if weights is not None
                else f"no weights for {name} in torch's cache ({path})"
            )
            raise UserInputError(f"{where}; download {url} on a machine with internet and pass --weights FILE, or copy it to {cached}")  # fmt: skip
        model = tvm.get_model(name, weights=None, weights_backbone=None, **build)
        load_state(model, path, name, "COCO weights")
        info = {"model": name, "weights_file": str(path), "weights_sha256": file_sha256(path)}
        return model.eval().to(device), info

    return load


def _spec(
    name: str, task: str, layers: tuple[str, ...], space: str, frame: int, text: str, **build
) -> TaskModelSpec:
    return TaskModelSpec(
        name, task, layers, space, frame, text, torchvision_task_loader(name, **build),
        lambda: list(_torchvision_meta(name)["categories"]),
    )  # fmt: skip


def _task_models() -> Registry[TaskModelSpec]:
    specs = [
        TaskModelSpec("shapes_detector", "detection", (DETECTOR_CAM_LAYER,), "unit", SceneSettings().size,
                      "a small CenterNet-style detector of the synthetic shapes (trained on first use, cached; default)",
                      _shapes_detector, lambda: list(CLASSES), "slic"),
        _spec("fasterrcnn_resnet50_fpn", "detection", ("backbone.body.layer4",), "unit", 512,
              "torchvision Faster R-CNN ResNet-50 FPN (COCO)"),
        _spec("retinanet_resnet50_fpn", "detection", ("backbone.body.layer4",), "unit", 512,
              "torchvision RetinaNet ResNet-50 FPN (COCO)"),
        _spec("fcos_resnet50_fpn", "detection", ("backbone.body.layer4",), "unit", 512,
              "torchvision FCOS ResNet-50 FPN (COCO)"),
        _spec("ssdlite320_mobilenet_v3_large", "detection", ("backbone.features.1",), "unit", 320,
              "torchvision SSDlite 320 MobileNetV3-Large (COCO)"),
        TaskModelSpec("shapes_segmenter", "segmentation", (SEGMENTER_CAM_LAYER,), "imagenet",
                      SceneSettings().size, "a small fully convolutional segmenter of the synthetic shapes "
                      "(trained on first use, cached; default)", _shapes_segmenter,
                      lambda: list(SEGMENTATION_CLASSES), "slic"),
        _spec("fcn_resnet50", "segmentation", ("backbone.layer4",), "imagenet", 520,
              "torchvision FCN ResNet-50 (COCO, the 20 VOC classes)", aux_loss=True),
        _spec("deeplabv3_resnet50", "segmentation", ("backbone.layer4",), "imagenet", 520,
              "torchvision DeepLabV3 ResNet-50 (COCO, the 20 VOC classes)", aux_loss=True),
        _spec("lraspp_mobilenet_v3_large", "segmentation", ("backbone.16",), "imagenet", 520,
              "torchvision LR-ASPP MobileNetV3-Large (COCO, the 20 VOC classes)"),
        TaskModelSpec("mtcnn", "face", (FACE_CAM_LAYER,), "unit", 256,
                      "MTCNN face detector (facenet-pytorch's weights, inside its wheel; default)", _mtcnn,
                      lambda: ["face"]),
    ]  # fmt: skip
    return Registry("task model", "choose one of: " + ", ".join(spec.name for spec in specs), specs=specs)


TASK_MODELS: Registry[TaskModelSpec] = _task_models()
DEFAULT_TASK_MODELS = {"detection": "shapes_detector", "segmentation": "shapes_segmenter", "face": "mtcnn"}


def task_model_spec(task: str, name: str | None) -> TaskModelSpec:
    """The spec of ``name`` (default: the task's own), which must serve ``task``; else a one-line error."""
    name = name or DEFAULT_TASK_MODELS[task]
    spec = TASK_MODELS.get(name)
    if spec is None or spec.task != task:
        choices = [n for n, s in TASK_MODELS.items() if s.task == task]
        raise UserInputError(
            f"--model {name} is not a {task} model{close_matches(name, choices)}; choose one of: {', '.join(choices)}"
        )
    return spec


def task_frame(image: np.ndarray, side: int) -> np.ndarray:
    """RGB uint8 (H,W,3) -> the frame: shrunk (bilinear) so that its longest side is at most ``side``, aspect
    kept; a smaller image is used as it is (the task models resize internally as their weights expect)."""
    height, width = image.shape[:2]
    if max(height, width) <= side:
        return np.ascontiguousarray(image)
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.array(Image.fromarray(image).resize(size, Image.BILINEAR).convert("RGB"), dtype=np.uint8)


def task_sample(spec: TaskModelSpec) -> tuple[str, np.ndarray]:
    """(name, RGB uint8 image) explained when no --image-path is given: the first test scene with two objects or
    more for the synthetic models, the bundled portrait for faces, the sample cat photo for the COCO models."""
    if spec.task == "face":
        return "astronaut", portrait()
    if spec.name.startswith("shapes_"):
        for index in range(100):
            scene = make_scenes(SceneSettings(), "test", 1, start=index)
            if len(scene.objects[0]) >= 2:
                return f"scene{index}", scene.images[0]
    return "chelsea", sample_image("chelsea")
