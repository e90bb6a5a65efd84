"""Fusing the CAM maps of several layers at pixel level: CamLIME's rule (mean), or max."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

FUSION_RULES = ("mean", "max")
EPS = 1e-7


def minmax_normalise(maps: torch.Tensor) -> torch.Tensor:
    """Per-image min-max: (B,H,W) -> (m - min) / (max - min + 1e-7), in [0,1). A constant map becomes 0."""
    flat = maps.flatten(1)
    lo = flat.amin(dim=1)[:, None, None]
    hi = flat.amax(dim=1)[:, None, None]
    return (maps - lo) / (hi - lo + EPS)


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (B,h,w) -> (B,H,W), half-pixel centres (cv2.INTER_LINEAR / align_corners=False)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps.float()
    return F.interpolate(maps[:, None].float(), size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def fuse_layer_maps(maps: Sequence[torch.Tensor], size: tuple[int, int], rule: str = "mean") -> torch.Tensor:
    """CamLIME's pixel-level fusion: each (B,h_l,w_l) map upsampled bilinearly to ``size``, min-max
    normalised, combined by ``rule`` ('mean', CamLIME's; or 'max', torchcam's), and renormalised.

    Returns (B,H,W) in [0,1]. With one layer this is simply the normalised, upsampled map.
    """
    if rule not in FUSION_RULES:
        raise ValueError(f"unknown fusion rule {rule!r}; choose one of {FUSION_RULES}")
    if not maps:
        raise ValueError("no maps to fuse")
    stacked = torch.stack([minmax_normalise(upsample(m, size)) for m in maps])
    combined = stacked.mean(dim=0) if rule == "mean" else stacked.amax(dim=0)
    return minmax_normalise(combined)
