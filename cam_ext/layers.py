"""Target layers named by dotted module path (``layer4``, ``layer4.1.conv2``, ``features.17``)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from torch import nn


class LayerNotFoundError(ValueError):
    """A layer name that is not a module path of the model; the message lists close matches."""


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
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    resolved = [resolve_layer(model, layer) for layer in layers]
    if not resolved:
        raise LayerNotFoundError("no target layer given")
    names = [name for name, _ in resolved]
    if len(set(names)) != len(names):
        raise LayerNotFoundError(f"layer listed twice: {names}")
    return resolved
