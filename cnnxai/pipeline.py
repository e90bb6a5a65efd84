"""GradLIME / CamLIME for one image: CAM priors from the model, one LIME neighbourhood, paired fits."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cam_ext import compute_cams, fuse_layer_maps, fuse_segment_priors
from cam_ext.compute import LayerCams
from lime_ext import CamLimeExplainer, Explanation, Neighbourhood, TorchClassifier, segment_prior

PRIOR_FUSIONS = ("mean", "max", "superpixel")


@dataclass(frozen=True)
class CamLimeResult:
    """Plain LIME and the CAM-prior explanation fitted on the same neighbourhood (a paired comparison)."""

    target: int
    ours: Explanation
    lime: Explanation
    cams: LayerCams
    prior: np.ndarray
    neighbourhood: Neighbourhood
    timings: dict


def cam_prior(cams: LayerCams, segments: np.ndarray, fusion: str = "mean") -> np.ndarray:
    """The prior (M,) of one image's CAMs: pixel-level fusion ('mean' CamLIME's rule, or 'max') of all
    layers then per-superpixel means, or 'superpixel': the mean of the per-layer priors."""
    if fusion not in PRIOR_FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(PRIOR_FUSIONS)}")
    if fusion == "superpixel":
        return fuse_segment_priors([segment_prior(m[0], segments) for m in cams.maps.values()])
    fused = fuse_layer_maps(list(cams.maps.values()), segments.shape, rule=fusion)
    return segment_prior(fused[0], segments)


def explain_with_cam_prior(
    model: nn.Module,
    image: np.ndarray,
    layers: str | Sequence[str],
    method: str = "gradcam",
    target: int | None = None,
    num_samples: int = 1000,
    seed: int = 0,
    batch_size: int | None = None,
    cam_mode: str = "feature",
    fusion: str = "mean",
    segmenter: str = "quickshift",
    hide_color=0,
    aug_smooth: bool = False,
    eigen_smooth: bool = False,
    classifier: TorchClassifier | None = None,
    progress: bool = False,
) -> CamLimeResult:
    """Explain ``image`` (RGB uint8 (H,W,3), model-input frame) with GradLIME/CamLIME and plain LIME.

    The target is ``target`` or the top prediction; both fits share one segmentation and one set of
    perturbations and predictions, so their difference comes from the prior alone.
    """
    classifier = classifier or TorchClassifier(model)
    timings: dict[str, float] = {}
    explainer = CamLimeExplainer(
        classifier, segmenter=segmenter, hide_color=hide_color, batch_size=batch_size
    )
    start = time.perf_counter()
    segments = explainer.segment(image, seed)
    timings["segmentation_s"] = time.perf_counter() - start

    start = time.perf_counter()
    x = classifier.prepare(
        torch.from_numpy(np.array(image)).to(classifier.device).permute(2, 0, 1).float() / 255.0
    )
    cams = compute_cams(
        model, x, layers, method=method, targets=target, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth
    )
    label = int(cams.targets[0])
    prior = cam_prior(cams, segments, fusion)
    timings["cam_s"] = time.perf_counter() - start

    neighbourhood = explainer.sample(
        image, num_samples=num_samples, seed=seed, segments=segments, progress=progress
    )
    timings["predict_s"] = neighbourhood.info["timings"]["predict_s"]
    start = time.perf_counter()
    ours = neighbourhood.fit(labels=[label], prior={label: prior}, cam_mode=cam_mode)
    lime = neighbourhood.fit(labels=[label], cam_mode="none")
    timings["fit_s"] = time.perf_counter() - start
    return CamLimeResult(label, ours, lime, cams, prior, neighbourhood, timings)
