"""Controls that no faithful explainer should lose to: an edge map and random noise."""

from __future__ import annotations

import numpy as np
from skimage.filters import sobel

from cnnxai.explainers.registry import Attribution, ExplainContext, register


@register(
    "control_sobel", "Control: Sobel edge magnitude of the normalised input, clipped to [0,1], channel mean"
)
def control_sobel(context: ExplainContext) -> Attribution:
    x = context.input_tensor[0].cpu().numpy()
    edges = np.clip(np.stack([sobel(channel) for channel in x]), 0, 1).mean(axis=0)
    return Attribution(edges.astype(np.float32))


@register("control_random", "Control: uniform noise U[0,1) from the seed", random=True)
def control_random(context: ExplainContext) -> Attribution:
    rng = np.random.default_rng([context.seed, 11])
    return Attribution(rng.random(context.image.shape[:2], dtype=np.float32))
