"""Raw per-layer class-activation maps for one or several layers, from as few passes as the method allows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from cam_ext.forward_methods import (
    ablationcam_weights,
    effective_bias,
    fullgrad_bias_layers,
    fullgrad_map,
    scorecam_weights,
)
from cam_ext.fusion import fuse_layer_maps
from cam_ext.hooks import RawActivations
from cam_ext.layers import resolve_layers, token_layout
from cam_ext.methods import first_component_projection, get_cam_method
from lime_ext.model_state import evaluation_mode

FULLGRAD_KEY = (
    "fullgrad"  # FullGrad ignores target layers; its single input-resolution map is stored under this key
)
# Methods that need a convolutional network's own layout, and why they do not apply to a vision transformer.
TRANSFORMER_REFUSALS = {
    "ablationcam": "it feeds the layer's output back with one channel zeroed, in the (B,C,h,w) layout, which a "
    "transformer block does not output",
    "fullgrad": "it sums the bias gradients of convolutions and batch norms, which a transformer does not have",
}
AUG_FACTORS = (0.9, 1.0, 1.1)  # pytorch-grad-cam's aug_smooth: horizontal flip x brightness factors


@dataclass(frozen=True)
class LayerCams:
    """Result of :func:`compute_cams`.

    ``maps[layer]`` is the raw map ReLU(CAM) of that layer, shape (B,h,w) at the layer's own resolution,
    not normalised, on the model's device. ``targets`` (B,) are the explained classes and ``logits``
    (B,C) the model's outputs on the (un-augmented) input.
    """

    method: str
    maps: dict[str, torch.Tensor]
    targets: torch.Tensor
    logits: torch.Tensor
    input_size: tuple[int, int]
    options: dict = field(default_factory=dict)

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.maps)

    def restricted(self, layers: Sequence[str]) -> LayerCams:
        """The maps of ``layers`` only (a subset of :attr:`layers`), e.g. one layer of a multi-layer pass."""
        missing = [layer for layer in layers if layer not in self.maps]
        if missing:
            raise KeyError(f"layers {missing} were not computed; these were: {list(self.maps)}")
        return LayerCams(self.method, {layer: self.maps[layer] for layer in layers}, self.targets, self.logits,
                         self.input_size, dict(self.options))  # fmt: skip

    def fused(self, rule: str = "mean") -> torch.Tensor:
        """CamLIME's pixel-level fusion of all layers (see :func:`cam_ext.fusion.fuse_layer_maps`), (B,H,W) in [0,1]."""
        return fuse_layer_maps(list(self.maps.values()), self.input_size, rule=rule)


def _as_batch(input_tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if input_tensor.ndim == 3:
        input_tensor = input_tensor.unsqueeze(0)
    if input_tensor.ndim != 4:
        raise ValueError(f"input must be (3,H,W) or (B,3,H,W), got shape {tuple(input_tensor.shape)}")
    # A detached copy: the caller's tensor is never modified and never gains a grad.
    return input_tensor.detach().to(device=device, dtype=torch.float32).clone()


def _model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else fallback


def _check_targets(targets: torch.Tensor, num_classes: int) -> None:
    bad = (targets < 0) | (targets >= num_classes)
    if bool(bad.any()):
        raise ValueError(
            f"target class {int(targets[bad][0])} is out of range: the model has {num_classes} classes (0..{num_classes - 1})"
        )


def _resolve_targets(
    targets: int | Sequence[int] | torch.Tensor | None, logits: torch.Tensor
) -> torch.Tensor:
    if targets is None:
        chosen = logits.argmax(dim=-1)
    else:
        chosen = torch.as_tensor(targets, device=logits.device, dtype=torch.long).reshape(-1)
        if chosen.numel() == 1 and logits.shape[0] > 1:
            chosen = chosen.expand(logits.shape[0])
        if chosen.numel() != logits.shape[0]:
            raise ValueError(f"{chosen.numel()} targets for a batch of {logits.shape[0]} images")
    _check_targets(chosen, logits.shape[-1])
    return chosen


def _augment(x: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) -> (6B,3,H,W): [no flip, flip] x AUG_FACTORS, the order of pytorch-grad-cam's ttach Compose."""
    return torch.cat(
        [(x.flip(-1) if flip else x) * factor for flip in (False, True) for factor in AUG_FACTORS]
    )


def _deaugment(maps: torch.Tensor, batch: int) -> torch.Tensor:
    """(6B,h,w) -> (B,h,w): flip the mirrored maps back and average the six."""
    per_aug = maps.reshape(2, len(AUG_FACTORS), batch, *maps.shape[1:])
    per_aug = torch.stack([per_aug[0], per_aug[1].flip(-1)])
    return per_aug.mean(dim=(0, 1))


def cam_refusal(method: str, model: nn.Module) -> str | None:
    """Why ``method`` gives no CAM of ``model`` (a known vision transformer, :func:`cam_ext.layers.token_layout`),
    or None when it applies."""
    layout = token_layout(model)
    reason = TRANSFORMER_REFUSALS.get(get_cam_method(method).name) if layout is not None else None
    if reason is None:
        return None
    return f"{method} does not apply to a {layout.family}: {reason}; pick another method (a gradient one, eigencam or scorecam)"


def compute_cams(
    model: nn.Module,
    input_tensor: torch.Tensor,
    layers: str | nn.Module | Sequence[str | nn.Module],
    method: str = "gradcam",
    targets: int | Sequence[int] | torch.Tensor | None = None,
    aug_smooth: bool = False,
    eigen_smooth: bool = False,
    batch_size: int = 32,
    reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> LayerCams:
    """Raw CAM maps of ``method`` at each of ``layers`` for the input (B,3,H,W) or (3,H,W).

    Gradient methods get every layer from one forward and one backward pass; targets are class indices
    (default: the top prediction) and the explained score is the target's logit, as grad-cam's
    ``ClassifierOutputTarget``. ``aug_smooth`` averages over horizontal flip x brightness {0.9,1,1.1} in one
    batched pass (targets fixed from the un-augmented input); ``eigen_smooth`` replaces the channel sum by
    the first principal component. The model's modes and ``requires_grad`` flags are restored, every hook
    is removed (also on error), and ``input_tensor`` is not modified. A known vision transformer's token
    layouts are reshaped to (B,C,h,w) by its :class:`cam_ext.layers.TokenLayout` unless ``reshape_transform``
    is given; the methods of ``TRANSFORMER_REFUSALS`` are refused there (ValueError with the reason).
    """
    spec = get_cam_method(method)
    if reshape_transform is None:
        reshape_transform = token_layout(model)
        refusal = cam_refusal(spec.name, model) if reshape_transform is not None else None
        if refusal:
            raise ValueError(refusal)
    device = _model_device(model, input_tensor.device)
    x = _as_batch(input_tensor, device)
    batch = x.shape[0]
    if spec.kind == "fullgrad":
        if eigen_smooth:
            raise ValueError(
                "eigen_smooth does not apply to fullgrad; drop --eigen-smooth or pick another method"
            )
        named = fullgrad_bias_layers(model)
    else:
        named = resolve_layers(model, layers)
    with evaluation_mode(model):
        with torch.no_grad():
            logits = model(x).float()
        chosen = _resolve_targets(targets, logits)
        inputs = _augment(x) if aug_smooth else x
        input_targets = chosen.repeat(len(inputs) // batch)
        maps = _maps(spec, model, named, inputs, input_targets, eigen_smooth, batch_size, reshape_transform)
    if aug_smooth:
        maps = {name: _deaugment(m, batch) for name, m in maps.items()}
    return LayerCams(
        method=spec.name,
        maps=maps,
        targets=chosen,
        logits=logits,
        input_size=(x.shape[-2], x.shape[-1]),
        options={"aug_smooth": aug_smooth, "eigen_smooth": eigen_smooth},
    )


def _maps(
    spec,
    model: nn.Module,
    named: list[tuple[str, nn.Module]],
    x: torch.Tensor,
    targets: torch.Tensor,
    eigen_smooth: bool,
    batch_size: int,
    reshape_transform,
) -> dict[str, torch.Tensor]:
    """Dispatch on the method's kind; every returned map is ReLU'd, detached, (B,h,w)."""
    # The input requires grad so the graph exists even when the model's parameters are frozen.
    x_in = x.clone().requires_grad_(spec.kind in ("gradient", "fullgrad"))
    rows = torch.arange(len(targets), device=x.device)
    with RawActivations(named, reshape_transform) as recorder, torch.set_grad_enabled(x_in.requires_grad):
        logits = model(x_in)
        score = logits[rows, targets].sum()
        outputs = recorder.layer_outputs()
        if spec.kind == "fullgrad":
            grads = torch.autograd.grad(score, [x_in, *outputs], allow_unused=True)
            layer_grads = [
                torch.zeros_like(o) if g is None else g for o, g in zip(outputs, grads[1:], strict=True)
            ]
            biases = [effective_bias(module) for _, module in named]
            fmap = fullgrad_map(x_in.detach(), grads[0], layer_grads, biases)
            return {FULLGRAD_KEY: torch.relu(fmap).detach()}
        grads = recorder.gradients_of(score, outputs) if spec.kind == "gradient" else [None] * len(outputs)
        acts = recorder.reshaped([o.detach() for o in outputs])
        grads = recorder.reshaped([g.detach() for g in grads]) if spec.kind == "gradient" else grads
        base_scores = logits.detach()[rows, targets].float()

    maps: dict[str, torch.Tensor] = {}
    for (name, module), act, grad in zip(named, acts, grads, strict=True):
        if act.ndim != 4:
            raise ValueError(
                f"layer {name!r} outputs shape {tuple(act.shape)}; CAMs need (B,K,h,w) (use reshape_transform for tokens)"
            )
        act = act.float()
        if spec.kind == "perturbation":
            weights = _perturbation_weights(
                spec.name, model, module, x, act, base_scores, targets, batch_size
            )
            weighted = weights[:, :, None, None] * act
            cam = first_component_projection(weighted) if eigen_smooth else weighted.sum(dim=1)
        else:
            cam = spec.formula(act, None if grad is None else grad.float(), eigen_smooth)
        maps[name] = torch.relu(cam).detach()
    return maps


def _perturbation_weights(method, model, module, x, act, base_scores, targets, batch_size) -> torch.Tensor:
    def scores_of(batch: torch.Tensor, b: int) -> torch.Tensor:
        with torch.no_grad():
            return model(batch)[:, targets[b]].float()

    if method == "scorecam":
        return scorecam_weights(x, act, scores_of, batch_size)
    return ablationcam_weights(model, module, x, act, base_scores, scores_of, batch_size)
