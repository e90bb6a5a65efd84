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
    rule, 'max', or 'superpixel': the mean of per-layer priors), grad-cam's ``aug_smooth`` / ``eigen_smooth``, and
    how much the prior counts: ``prior_floor`` ε (a_j <- max(a_j, ε), renormalised, so no superpixel is ruled out
    for good) and ``prior_strength`` λ, the ridge penalty of the fit with the prior (docs/method.md,
    "#prior-strength"; 1 is the paper's).
    """

    method: str = "gradcam"
    layers: tuple[str, ...] = ()
    fusion: str = "mean"
    aug_smooth: bool = False
    eigen_smooth: bool = False
    prior_floor: float = 0.0
    prior_strength: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.prior_floor < 1:
            raise ValueError(f"prior_floor must be in [0, 1), got {self.prior_floor}")
        if not self.prior_strength > 0:
            raise ValueError(f"prior_strength must be positive, got {self.prior_strength}")
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
    positive mean (all zero, or constant) gives the uniform prior a = 1: nothing to prefer. The map is upsampled
    and normalised on its device; the per-superpixel means are summed on the host, in pixel order (one copy of
    the (H,W) map): CUDA's weighted ``bincount`` adds with atomics, in an order that changes from run to run.
    """
    cam = torch.as_tensor(cam_map)  # device-ok: a tensor stays on its device; a numpy map is the host's
    if cam.ndim != 2:
        raise ValueError(f"a CAM map must be 2-D (h,w), got shape {tuple(cam.shape)}")
    seg = segments.cpu().numpy() if isinstance(segments, torch.Tensor) else np.asarray(segments)
    height, width = seg.shape
    normalised = minmax_normalise(upsample(cam[None].float(), (height, width)))[0]
    values = normalised.double().cpu().numpy().reshape(-1)
    flat = seg.reshape(-1).astype(np.int64)
    num = int(flat.max()) + 1
    sums = np.bincount(flat, weights=values, minlength=num)
    counts = np.maximum(np.bincount(flat, minlength=num), 1)
    prior = sums / counts
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


def floored(prior: np.ndarray, floor: float) -> np.ndarray:
    """a_j <- max(a_j, ``floor``), divided by its max (so still max(a) = 1): with a floor ε > 0 a superpixel the
    CAM ignores keeps a column of at least ε in Z diag(a) and can still be chosen. Floor 0 leaves a unchanged."""
    if floor <= 0:
        return prior
    raised = np.maximum(prior, floor)
    return raised / raised.max()


def cam_prior(
    cams: LayerCams, segments: np.ndarray, fusion: str = "mean", index: int = 0, floor: float = 0.0
) -> np.ndarray:
    """The prior (M,) of batch element ``index`` of ``cams``: pixel-level fusion ('mean' or 'max') of all its
    layers then per-superpixel means, or 'superpixel': the mean of the per-layer priors; then :func:`floored`."""
    if fusion not in PRIOR_FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(PRIOR_FUSIONS)}")
    if fusion == "superpixel":
        prior = fuse_segment_priors([segment_prior(m[index], segments) for m in cams.maps.values()])
    else:
        fused = fuse_layer_maps(
            [m[index : index + 1] for m in cams.maps.values()], segments.shape, rule=fusion
        )
        prior = segment_prior(fused[0], segments)
    return floored(prior, floor)


def legacy_maps(cams: LayerCams) -> np.ndarray:
    """What the public GradLIME v1 / CamLIME code resized into (N,M) (``cam_mode='legacy'``): the CAM at layer
    resolution, min-max normalised, several layers fused at the smallest layer's size; (B,h,w)."""
    size = min((tuple(m.shape[-2:]) for m in cams.maps.values()), key=lambda hw: hw[0] * hw[1])
    return fuse_layer_maps(list(cams.maps.values()), size, rule="mean").cpu().numpy()
