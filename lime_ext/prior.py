"""Per-superpixel priors from a class-activation map (algorithms.md 2.1)."""

from __future__ import annotations

import numpy as np
import torch

from cam_ext.fusion import minmax_normalise, upsample


def segment_prior(cam_map: torch.Tensor | np.ndarray, segments: np.ndarray | torch.Tensor) -> np.ndarray:
    """The prior a (M,) float64 of a CAM map (h,w) over superpixels ``segments`` (H,W) with ids 0..M-1.

    The map is upsampled bilinearly to (H,W), min-max normalised, averaged per superpixel and divided by
    the largest mean, so max(a) = 1. A map with no positive mean (all zero, or constant) gives the uniform
    prior a = 1: nothing to prefer. Computed on the map's device.
    """
    cam = torch.as_tensor(cam_map)
    if cam.ndim != 2:
        raise ValueError(f"a CAM map must be 2-D (h,w), got shape {tuple(cam.shape)}")
    seg = torch.as_tensor(np.asarray(segments) if not isinstance(segments, torch.Tensor) else segments)
    seg = seg.to(cam.device).long()
    height, width = seg.shape
    normalised = minmax_normalise(upsample(cam[None].float(), (height, width)))[0]
    num = int(seg.max()) + 1
    flat = seg.reshape(-1)
    sums = torch.bincount(flat, weights=normalised.reshape(-1).double(), minlength=num)
    counts = torch.bincount(flat, minlength=num).clamp_min(1)
    prior = (sums / counts).cpu().numpy()
    top = prior.max()
    if top <= 1e-12:
        return np.ones(num, dtype=np.float64)
    return prior / top


def is_uniform(prior: np.ndarray | None) -> bool:
    """True when a prior carries no preference (None or all entries equal)."""
    return prior is None or bool(np.all(prior == prior.flat[0]))
