"""From class-activation maps to the per-superpixel prior of GradLIME / CamLIME: the one place where a CAM meets
the superpixels (docs/method.md, "The CAM prior" and "Fusing layers").

Everything returns plain arrays, so the LIME engine (``lime_ext``) needs to know nothing of CAMs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cam_ext.compute import LayerCams
from cam_ext.fusion import fuse_layer_maps, minmax_normalise, upsample
from cam_ext.methods import get_cam_method

PRIOR_FUSIONS = ("mean", "max", "superpixel")


@dataclass(frozen=True)
class CamSettings:
    """How the CAM prior is made: the CAM ``method`` (one of :data:`cam_ext.CAM_METHODS`), the target ``layers``
    (dotted module paths; several are fused), the ``fusion`` of several layers ('mean': CamLIME's pixel-level
    rule, 'max', or 'superpixel': the mean of per-layer priors), and grad-cam's ``aug_smooth`` / ``eigen_smooth``.
    """

    method: str = "gradcam"
    layers: tuple[str, ...] = ()
    fusion: str = "mean"
    aug_smooth: bool = False
    eigen_smooth: bool = False

    def __post_init__(self) -> None:
        layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers or ())
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "method", get_cam_method(self.method).name)
        if self.fusion not in PRIOR_FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; choose one of {', '.join(PRIOR_FUSIONS)}")

    @property
    def pixel_rule(self) -> str:
        """The pixel-level rule of the fused map shown beside the explanation ('superpixel' fuses priors, so
        its map is the pixel mean)."""
        return "max" if self.fusion == "max" else "mean"


def segment_prior(cam_map: torch.Tensor | np.ndarray, segments: np.ndarray | torch.Tensor) -> np.ndarray:
    """The prior a (M,) float64 of a CAM map (h,w) over superpixels ``segments`` (H,W) with ids 0..M-1.

    The map is upsampled bilinearly to (H,W), min-max normalised, averaged per superpixel and divided by the
    largest mean, so max(a) = 1 (not a min-max of a, which would zero one superpixel for good). A map with no
    positive mean (all zero, or constant) gives the uniform prior a = 1: nothing to prefer. Computed on the map's
    device.
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


def fuse_segment_priors(priors: Sequence[np.ndarray]) -> np.ndarray:
    """Superpixel-level fusion: the mean of per-layer priors (each (M,)), divided by its max; an all-zero result
    is the uniform prior (all ones), as for a single layer."""
    if len(priors) == 0:
        raise ValueError("no priors to fuse")
    mean = np.mean(np.stack([np.asarray(p, dtype=np.float64) for p in priors]), axis=0)
    top = mean.max()
    return np.ones_like(mean) if top <= 1e-12 else mean / top


def cam_prior(cams: LayerCams, segments: np.ndarray, fusion: str = "mean", index: int = 0) -> np.ndarray:
    """The prior (M,) of batch element ``index`` of ``cams``: pixel-level fusion ('mean' or 'max') of all its
    layers then per-superpixel means, or 'superpixel': the mean of the per-layer priors."""
    if fusion not in PRIOR_FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(PRIOR_FUSIONS)}")
    if fusion == "superpixel":
        return fuse_segment_priors([segment_prior(m[index], segments) for m in cams.maps.values()])
    fused = fuse_layer_maps([m[index : index + 1] for m in cams.maps.values()], segments.shape, rule=fusion)
    return segment_prior(fused[0], segments)


def legacy_maps(cams: LayerCams) -> np.ndarray:
    """What the public GradLIME v1 / CamLIME code resized into (N,M) (``cam_mode='legacy'``): the CAM at layer
    resolution, min-max normalised, several layers fused at the smallest layer's size; (B,h,w)."""
    size = min((tuple(m.shape[-2:]) for m in cams.maps.values()), key=lambda hw: hw[0] * hw[1])
    return fuse_layer_maps(list(cams.maps.values()), size, rule="mean").cpu().numpy()
