"""CAM variants that need more than one forward+backward pass: ScoreCAM, AblationCAM, FullGrad.

All batched on the model's device. Formulas follow pytorch-grad-cam 1.5.x (docs/method.md#cam-methods) with two
documented deviations: AblationCAM always zeroes the ablated channel (the paper's definition; grad-cam
uses min - 1e7 when the activations can be negative), and FullGrad sums each layer's normalised channels
before the (linear) bilinear resize instead of after, which is the same map for a fraction of the memory.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # (B,3,H,W) -> (B,) target scores


def _minmax_per_channel(t: torch.Tensor) -> torch.Tensor:
    """(B,K,h,w) -> each (b,k) slice shifted to min 0 and divided by (max + 1e-7), as grad-cam's scale_cam_image."""
    shifted = t - t.amin(dim=(2, 3), keepdim=True)
    return shifted / (shifted.amax(dim=(2, 3), keepdim=True) + 1e-7)


@torch.no_grad()
def scorecam_weights(
    image: torch.Tensor,
    acts: torch.Tensor,
    scores_of: Callable[[torch.Tensor, int], torch.Tensor],
    batch_size: int,
) -> torch.Tensor:
    """Score-CAM channel weights, shape (B,K).

    image (B,3,H,W) is the model input, acts (B,K,h,w) the layer activations; each channel, upsampled
    (bilinear, corners aligned, as grad-cam) and min-max normalised, masks the input, and the target score
    of the masked image is taken; weights are the softmax of those scores over channels.
    """
    up = F.interpolate(acts.float(), size=image.shape[-2:], mode="bilinear", align_corners=True)
    flat = up.flatten(2)
    mins, maxs = flat.amin(-1)[..., None, None], flat.amax(-1)[..., None, None]
    up = (up - mins) / (maxs - mins + 1e-8)  # a constant channel gives a zero mask, never 0/0
    weights = []
    for b in range(image.shape[0]):
        scores = []
        for start in range(0, up.shape[1], batch_size):
            masks = up[b, start : start + batch_size, None]  # (n,1,H,W)
            scores.append(scores_of(image[b : b + 1] * masks, b))
        weights.append(torch.softmax(torch.cat(scores), dim=0))
    return torch.stack(weights)


@torch.no_grad()
def ablationcam_weights(
    model: nn.Module,
    layer: nn.Module,
    image: torch.Tensor,
    acts: torch.Tensor,
    base_scores: torch.Tensor,
    scores_of: Callable[[torch.Tensor, int], torch.Tensor],
    batch_size: int,
) -> torch.Tensor:
    """Ablation-CAM channel weights (B,K): w_k = (y_c - y_c[A_k := 0]) / y_c.

    A forward hook on ``layer`` replaces its output by copies of the cached activations with one channel
    zeroed per batch element, so a batch of n elements ablates n channels in one pass. A module called several
    times per forward (EfficientNet-Lite0's shared ``_swish``) has only its last call replaced: the call whose
    output the CAM is made of.
    """
    calls = _calls_per_forward(model, layer, image[:1])
    channels = acts.shape[1]
    weights = torch.empty(acts.shape[:2], device=acts.device, dtype=torch.float32)
    for b in range(image.shape[0]):
        for start in range(0, channels, batch_size):
            idx = torch.arange(start, min(start + batch_size, channels), device=acts.device)
            ablated = acts[b : b + 1].repeat(len(idx), 1, 1, 1)
            ablated[torch.arange(len(idx), device=acts.device), idx] = 0

            seen = [0]

            def replace(
                module: nn.Module, inputs: tuple, output: torch.Tensor, ablated=ablated, seen=seen
            ) -> torch.Tensor | None:
                seen[0] += 1
                return ablated.to(output.dtype) if seen[0] == calls else None

            handle = layer.register_forward_hook(replace)
            try:
                scores = scores_of(image[b : b + 1].expand(len(idx), -1, -1, -1), b)
            finally:
                handle.remove()
            weights[b, idx] = (base_scores[b] - scores.float()) / base_scores[b]
    return weights


def _calls_per_forward(model: nn.Module, layer: nn.Module, image: torch.Tensor) -> int:
    """How many times ``layer`` runs in one forward pass of ``model`` on ``image``."""
    count = [0]

    def tally(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        count[0] += 1

    handle = layer.register_forward_hook(tally)
    try:
        with torch.no_grad():
            model(image)
    finally:
        handle.remove()
    return count[0]


def fullgrad_bias_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers FullGrad uses: every Conv2d / BatchNorm2d with a bias (exact types, as grad-cam)."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if type(module) in (nn.Conv2d, nn.BatchNorm2d) and getattr(module, "bias", None) is not None
    ]


def effective_bias(layer: nn.Module) -> torch.Tensor:
    """The bias a layer adds: Conv2d's bias, or BatchNorm's bias - mean * gamma / sqrt(var + eps) in eval mode."""
    if isinstance(layer, nn.BatchNorm2d):
        return layer.bias - layer.running_mean * layer.weight / torch.sqrt(layer.running_var + layer.eps)
    return layer.bias


def fullgrad_map(
    image: torch.Tensor, input_grad: torch.Tensor, layer_grads: list[torch.Tensor], biases: list[torch.Tensor]
) -> torch.Tensor:
    """FullGrad map (B,H,W), un-normalised: sum of the normalised |x * dy/dx| channels and, per bias layer,
    the channel sum of normalised |b * dy/dA| upsampled to the input size."""
    size = image.shape[-2:]
    total = _minmax_per_channel((input_grad * image).abs()).sum(dim=1)
    for grads, bias in zip(layer_grads, biases, strict=True):
        per_layer = _minmax_per_channel((bias.detach()[None, :, None, None] * grads).abs()).sum(
            dim=1, keepdim=True
        )
        total = total + F.interpolate(per_layer, size=size, mode="bilinear", align_corners=False)[:, 0]
    return total
