"""RISE (Petsiuk et al. 2018): saliency from randomly masked inputs, batched on the model's device."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from cnnxai.explainers.registry import Attribution, ExplainContext, register
from cnnxai.options import Option, at_least, probability
from lime_ext import forward_batches


def rise_masks(
    num_masks: int, size: tuple[int, int], cells: int, p1: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The random parts of RISE's masks: binary grids (N,s,s) and crop shifts (N,2), drawn on the CPU from ``rng``."""
    grids = (rng.random((num_masks, cells, cells)) < p1).astype(np.float32)
    cell_h, cell_w = math.ceil(size[0] / cells), math.ceil(size[1] / cells)
    shifts = np.stack([rng.integers(0, cell_h, num_masks), rng.integers(0, cell_w, num_masks)], axis=1)
    return grids, shifts


def upsample_masks(grids: torch.Tensor, shifts: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Grids (n,s,s) -> masks (n,1,H,W) in [0,1]: bilinear upsampling to (s+1) cells, then a shifted crop."""
    cells = grids.shape[-1]
    cell_h, cell_w = math.ceil(size[0] / cells), math.ceil(size[1] / cells)
    up = F.interpolate(
        grids[:, None],
        size=((cells + 1) * cell_h, (cells + 1) * cell_w),
        mode="bilinear",
        align_corners=False,
    )
    return torch.stack([up[i, :, dy : dy + size[0], dx : dx + size[1]] for i, (dy, dx) in enumerate(shifts)])


RISE_OPTIONS = (
    Option("masks", 4000, "random masks N", check=at_least(1), alias="rise_masks"),
    Option("cells", 8, "grid cells per side of a mask before upsampling", check=at_least(1)),
    Option("p1", 0.1, "probability that a cell is kept", check=probability),
)


@register(
    "rise",
    "RISE: 4000 random masks (8x8 grid, p=0.1), saliency = sum of P(c | x*M) M / (N p); seeded",
    RISE_OPTIONS,
    random=True,
)
def rise(context: ExplainContext) -> Attribution:
    num_masks, cells, p1 = context.option("masks"), context.option("cells"), context.option("p1")
    size = context.image.shape[:2]
    grids, shifts = rise_masks(num_masks, size, cells, p1, np.random.default_rng([context.seed, 7]))
    x = context.input_tensor
    saliency = torch.zeros(size, device=x.device)
    current: list[torch.Tensor] = []  # the masks of the batch being predicted

    def build(start: int, stop: int) -> torch.Tensor:
        masks = upsample_masks(torch.from_numpy(grids[start:stop]).to(x.device), shifts[start:stop], size)
        current[:] = [masks]
        # The mask multiplies the normalised tensor: a masked pixel becomes the mean colour (RISE's choice).
        return x * masks

    for _, _, outputs in forward_batches(context.classifier, num_masks, build, context.forward_batch):
        saliency += (outputs[:, context.target, None, None] * current[0][:, 0]).sum(dim=0)
    saliency /= num_masks * p1
    return Attribution(saliency.cpu().numpy().astype(np.float32))
