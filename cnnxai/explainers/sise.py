"""SISE (Sattarzadeh et al. 2021): semantic input sampling over several layers, fused with Otsu-gated products.

Per layer: one forward and backward pass gives the activations and the gradient of the target's
probability; channels whose mean gradient exceeds mu * max are kept, upsampled, min-max normalised and used
as masks of the (normalised) input; the layer map is the score-weighted sum of the masks (each normalised to
unit sum). Layer maps are fused from low to high level: e <- (e + E_l) * sigmoid(T (E_l - theta_l)), with
theta_l the Otsu threshold of E_l. Deviation from the TF code: masks are min-max normalised by (max - min), not
by max after subtracting the min, so every mask spans [0,1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from skimage.filters import threshold_otsu
from torch import nn

from cam_ext import minmax_normalise, resolve_layers
from cam_ext.hooks import RawActivations, forward_with_hooks
from cnnxai.explainers.registry import Attribution, ExplainContext, register
from cnnxai.options import Option, parse_names
from lime_ext import evaluation_mode, forward_batches


def block_output_layers(model: nn.Module, x: torch.Tensor) -> list[str]:
    """SISE's layer choice, made generic: for each feature-map size H/4, H/8, ... (down to 2), the last module
    (in execution order) that outputs it; H/2 only when there is nothing smaller. On a ResNet these are
    layer1..layer4; on a VGG the last ReLU of each block (the inputs of its pooling layers, as SISE's
    ``pool_input=True``). Padded intermediate sizes (57, 29, ...) are not H/2^k and are skipped."""
    height = x.shape[-1]
    sizes = {height >> k for k in range(1, 12) if (height >> k) >= 2 and (height >> k) << k == height}
    last_at: dict[int, str] = {}

    def record(name: str):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[-1] in sizes:
                last_at[output.shape[-1]] = name

        return hook

    forward_with_hooks(model, x, [(module, record(name)) for name, module in model.named_modules() if name])
    chosen = [size for size in sorted(last_at, reverse=True) if size <= height // 4] or sorted(
        last_at, reverse=True
    )[:1]
    if not chosen:
        raise ValueError("sise found no feature maps of size H/2^k; pass sise_layers=[...]")
    return [last_at[size] for size in chosen]  # low level (large maps) first


def otsu_threshold(layer_map: np.ndarray, tau: float = 1.5) -> float:
    """Otsu's threshold (256 bins) of a map in [0,1], raised by tau when less than 10% of the map lies above
    threshold * tau (SISE's adaptive rule)."""
    if float(layer_map.max()) <= float(layer_map.min()):
        return float(layer_map.max())
    threshold = float(threshold_otsu(layer_map, nbins=256))
    if (layer_map > threshold * tau).mean() < 0.1:
        threshold *= tau
    return threshold


def fuse_otsu(layer_maps: list[np.ndarray], temperature: float = 100.0) -> np.ndarray:
    """e <- E_1; for l >= 2: e <- (e + E_l) * sigmoid(T (E_l - theta_l)); maps ordered low level first."""
    fused = layer_maps[0]
    for layer_map in layer_maps[1:]:
        gate = 1.0 / (1.0 + np.exp(-temperature * (layer_map - otsu_threshold(layer_map))))
        fused = (fused + layer_map) * gate
    return fused


@torch.no_grad()
def _layer_map(
    context: ExplainContext, x: torch.Tensor, acts: torch.Tensor, grads: torch.Tensor, mu: float
) -> np.ndarray:
    significance = grads.mean(dim=(2, 3))[0]  # (K,)
    kept = torch.nonzero(significance > mu * significance.max()).flatten()
    size = x.shape[-2:]
    if len(kept) == 0 or float(significance.max()) <= 0:
        return np.zeros(tuple(size), dtype=np.float64)
    masks = F.interpolate(acts[:, kept].float(), size=tuple(size), mode="bilinear", align_corners=False)[0]
    masks = minmax_normalise(masks)  # each mask to [0,1]
    total = torch.zeros(tuple(size), device=x.device)
    for start, stop, outputs in forward_batches(
        context.classifier, len(masks), lambda s, e: x * masks[s:e, None], context.forward_batch
    ):
        chunk = masks[start:stop]
        unit = chunk / (chunk.sum(dim=(1, 2), keepdim=True) + 1e-6)
        total += (outputs[:, context.target, None, None] * unit).sum(dim=0)
    return minmax_normalise(total[None])[0].cpu().numpy().astype(np.float64)


@register(
    "sise",
    "SISE: masks from positive-gradient channels of several layers, Otsu-gated fusion (mu=0, T=100)",
    (
        Option(
            "layers",
            None,
            "layers, low level first; default: the last module of each feature-map size H/4, H/8, ...",
            parse=parse_names,
        ),
        Option("mu", 0.0, "channels whose mean gradient exceeds mu times the largest are kept"),
    ),  # fmt: skip
)
def sise(context: ExplainContext) -> Attribution:
    model, x = context.model, context.input_tensor
    mu = context.option("mu")
    with evaluation_mode(model):
        layers = context.option("layers") or block_output_layers(model, x)
        named = resolve_layers(model, layers)
        x_in = x.clone().requires_grad_(True)
        with RawActivations(named) as recorder, torch.enable_grad():
            probability = torch.softmax(model(x_in), dim=-1)[0, context.target]
            outputs = recorder.layer_outputs()
            grads = recorder.gradients_of(probability, outputs)
        maps = [
            _layer_map(context, x, out.detach(), grad, mu) for out, grad in zip(outputs, grads, strict=True)
        ]
    fused = fuse_otsu(maps)
    top = fused.max() - fused.min()
    fused = (fused - fused.min()) / top if top > 0 else np.zeros_like(fused)
    return Attribution(fused.astype(np.float32), {"layers": [name for name, _ in named], "layer_maps": maps})
