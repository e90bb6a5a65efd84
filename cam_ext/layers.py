"""Target layers named by dotted module path (``layer4``, ``layer4.1.conv2``, ``features.17``), the default layer
of a model that names none (:func:`locate_layers`), and the token layouts of vision transformers
(:class:`TokenLayout`: pytorch-grad-cam's ``reshape_transform``, found from the model)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lime_ext.model_state import evaluation_mode


class LayerNotFoundError(ValueError):
    """A layer name that is not a module path of the model; the message lists close matches."""


NO_HOOKS = (
    "a TorchScript model gives no CAM: torch refuses forward hooks on ScriptModules; save the model with "
    "torch.export.save(torch.export.export(model, (x,)), 'model.pt2') and use that file"
)


def layer_names(model: nn.Module) -> list[str]:
    """All dotted module paths of ``model`` (the root module, named ``''``, excluded)."""
    return [name for name, _ in model.named_modules() if name]


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Return ``(dotted_name, module)`` for a layer given by name or as a module of ``model``.

    Raises :class:`LayerNotFoundError` naming up to five close matches when the name is unknown.
    A container (``nn.Sequential``) is one layer: its output is hooked, its children are not
    iterated (a pitfall of the public GradLIME / CamLIME scripts).
    """
    modules = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, module in modules.items():
            if module is layer and name:
                return name, module
        raise LayerNotFoundError("the given layer module is not a submodule of the model")
    name = str(layer).strip()
    # Accept the spellings users copy from code: model.features[17] -> features.17
    name = name.replace("[", ".").replace("]", "")
    if name.startswith("model."):
        name = name[len("model.") :]
    if name and name in modules:
        return name, modules[name]
    candidates = layer_names(model)
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise LayerNotFoundError(f"unknown layer {layer!r}{hint} (list them with cam_ext.layer_names(model))")


def resolve_layers(
    model: nn.Module, layers: str | nn.Module | Sequence[str | nn.Module]
) -> list[tuple[str, nn.Module]]:
    """Resolve one or several layers; duplicates are an error (they would be hooked twice)."""
    if isinstance(model, torch.jit.ScriptModule):
        raise LayerNotFoundError(NO_HOOKS)
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    resolved = [resolve_layer(model, layer) for layer in layers]
    if not resolved:
        raise LayerNotFoundError("no target layer given")
    names = [name for name, _ in resolved]
    if len(set(names)) != len(names):
        raise LayerNotFoundError(f"layer listed twice: {names}")
    return resolved


@dataclass(frozen=True)
class TokenLayout:
    """pytorch-grad-cam's ``reshape_transform`` for a vision transformer: a layer's output as a (B,C,h,w) map.

    ``'tokens'`` (ViT, DeiT): a (B,N,C) token sequence; the ``prefix`` leading tokens (class, distillation and
    register tokens) are dropped and the remaining h*w patch tokens laid out on the model's patch ``grid``.
    ``'channels_last'`` (Swin): a (B,h,w,C) map, permuted to (B,C,h,w). Outputs of other layouts (a patch
    embedding's (B,C,h,w) convolution) pass unchanged. ``default_layer`` is the layer whose CAM the tools take
    when none is named: the last block's input norm for ViTs (after the last block only the class token
    reaches the head, so the patch tokens' gradients there are zero), the final norm for Swin.
    """

    family: str
    kind: str
    default_layer: str
    grid: tuple[int, int] | None = None
    prefix: int = 0

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.kind == "channels_last" and tensor.ndim == 4:
            return tensor.permute(0, 3, 1, 2)
        if self.kind != "tokens" or tensor.ndim != 3:
            return tensor
        batch, count, channels = tensor.shape
        height, width = self.grid
        if count - self.prefix != height * width:
            raise ValueError(
                f"{self.family}: {count} tokens do not make {self.prefix} prefix tokens and a {height}x{width} patch "
                "grid; pick a layer inside the transformer blocks"
            )
        patches = tensor[:, self.prefix :]
        return patches.reshape(batch, height, width, channels).permute(0, 3, 1, 2)


def _layout_of(module: nn.Module, path: str) -> TokenLayout | None:
    """The layout of ``module`` when it is a vision transformer we know (torchvision's, timm's), else None."""
    kind = type(module)
    origin = kind.__module__
    at = f"{path}." if path else ""
    if origin.startswith("torchvision.models.vision_transformer") and hasattr(module, "encoder"):
        side = module.image_size // module.patch_size
        last = list(dict(module.encoder.layers.named_children()))[-1]
        prefix = module.seq_length - side * side  # the class token
        return TokenLayout(
            "torchvision ViT", "tokens", f"{at}encoder.layers.{last}.ln_1", (side, side), prefix
        )
    if origin.startswith("torchvision.models.swin_transformer") and hasattr(module, "features"):
        return TokenLayout("torchvision Swin", "channels_last", f"{at}norm")
    if origin.startswith("timm.models.") and hasattr(module, "patch_embed"):
        if hasattr(module, "blocks") and hasattr(module, "num_prefix_tokens"):  # ViT, DeiT, with registers
            grid = tuple(int(v) for v in module.patch_embed.grid_size)
            last = len(module.blocks) - 1
            return TokenLayout(f"timm {kind.__name__}", "tokens", f"{at}blocks.{last}.norm1", grid,
                               int(module.num_prefix_tokens))  # fmt: skip
        if kind.__name__.startswith("SwinTransformer") and hasattr(module, "norm"):
            return TokenLayout(f"timm {kind.__name__}", "channels_last", f"{at}norm")
    return None


def token_layout(model: nn.Module) -> TokenLayout | None:
    """The :class:`TokenLayout` of the first known vision transformer inside ``model`` (itself, or wrapped, e.g.
    as ``inner``), with its default layer named as a path of ``model``; None for other models (CNNs)."""
    for path, module in model.named_modules():
        layout = _layout_of(module, path)
        if layout is not None:
            return layout
    return None


def locate_layers(model: nn.Module, example: torch.Tensor) -> tuple[str, ...]:
    """The CAM layer of a model that does not name its own.

    ``model.default_layers`` when it has them (zoo models); a known vision transformer's
    (:class:`TokenLayout`); otherwise the last module (by when its forward ends) whose output is the batch's
    spatial feature map (B,C,h,w) with h*w > 1, pooling layers aside: for a CNN classifier, the last
    convolutional block (ResNet: ``layer4``). One forward of ``example`` (1,3,H,W), without gradients, in
    evaluation mode (the model's modes are restored). Raises :class:`LayerNotFoundError` when no layer fits.
    """
    zoo_layers = getattr(model, "default_layers", None)
    if zoo_layers:
        return tuple(zoo_layers)
    if isinstance(model, torch.jit.ScriptModule):
        raise LayerNotFoundError(NO_HOOKS)
    layout = token_layout(model)
    if layout is not None:
        return (layout.default_layer,)
    pooling = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)
    last: list[str] = []

    def record(name: str):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[0] == len(example):
                if output.shape[2] * output.shape[3] > 1:
                    last.append(name)

        return hook

    handles = []
    try:
        for name, module in model.named_modules():
            if name and not isinstance(module, pooling):
                handles.append(module.register_forward_hook(record(name)))
        with evaluation_mode(model), torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    if not last:
        raise LayerNotFoundError(
            "found no layer with a spatial feature map (B,C,h,w) in the model; name one (layers=['<module path>'])"
        )
    return (last[-1],)
