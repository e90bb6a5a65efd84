"""GradLIME / CamLIME for one image: CAM priors from the model, one LIME neighbourhood, paired fits."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from cam_ext import compute_cams, fuse_layer_maps, fuse_segment_priors
from cam_ext.compute import LayerCams
from cnnxai.errors import UserInputError
from lime_ext import CamLimeExplainer, Explanation, Neighbourhood, TorchClassifier, segment_prior

PRIOR_FUSIONS = ("mean", "max", "superpixel")


@dataclass(frozen=True)
class CamLimeResult:
    """Plain LIME and the CAM-prior explanation fitted on the same neighbourhood (a paired comparison).

    ``labels`` are the explained classes, the first being the main one (``target``); ``priors[label]`` is
    that class's prior (M,); ``cam_maps[label]`` its fused CAM (H,W) in [0,1] on the image frame;
    ``probabilities`` (C,) the classifier's output on the image.
    """

    labels: list[int]
    ours: Explanation
    lime: Explanation
    cams: LayerCams
    priors: dict[int, np.ndarray]
    cam_maps: dict[int, np.ndarray]
    probabilities: np.ndarray
    neighbourhood: Neighbourhood
    timings: dict

    @property
    def target(self) -> int:
        return self.labels[0]

    @property
    def prior(self) -> np.ndarray:
        return self.priors[self.target]


def cam_prior(cams: LayerCams, segments: np.ndarray, fusion: str = "mean", index: int = 0) -> np.ndarray:
    """The prior (M,) of batch element ``index``: pixel-level fusion ('mean', CamLIME's rule, or 'max') of
    all layers then per-superpixel means, or 'superpixel': the mean of the per-layer priors."""
    if fusion not in PRIOR_FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(PRIOR_FUSIONS)}")
    if fusion == "superpixel":
        return fuse_segment_priors([segment_prior(m[index], segments) for m in cams.maps.values()])
    fused = fuse_layer_maps([m[index : index + 1] for m in cams.maps.values()], segments.shape, rule=fusion)
    return segment_prior(fused[0], segments)


def explain_with_cam_prior(
    model: nn.Module,
    image: np.ndarray,
    layers: str | Sequence[str],
    method: str = "gradcam",
    target: int | None = None,
    top_labels: int = 1,
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

    The explained classes are ``[target]`` or, without a target, the ``top_labels`` best predicted ones;
    each gets its own class-specific CAM prior (all from one batched CAM pass). Both fits share one
    segmentation and one set of perturbations and predictions, so their difference comes from the prior alone.
    """
    classifier = classifier or TorchClassifier(model)
    timings: dict[str, float] = {}
    explainer = CamLimeExplainer(
        classifier, segmenter=segmenter, hide_color=hide_color, batch_size=batch_size
    )
    start = time.perf_counter()
    segments = explainer.segment(image, seed)
    timings["segmentation_s"] = time.perf_counter() - start
    if segments.max() < 1:
        raise UserInputError(
            f"segmentation ({segmenter}) found a single superpixel: nothing to explain; try --segmenter slic"
        )

    start = time.perf_counter()
    x = classifier.prepare_rgb(image)
    with classifier.session():
        probabilities = classifier.forward_prepared(x[None])[0].cpu().numpy()
    if target is not None:
        if not 0 <= int(target) < len(probabilities):
            raise ValueError(
                f"target class {target} is out of range: the model has {len(probabilities)} classes (0..{len(probabilities) - 1})"
            )
        labels = [int(target)]
    else:
        labels = [int(c) for c in np.argsort(probabilities)[::-1][: max(1, int(top_labels))]]
    batch = x[None].expand(len(labels), -1, -1, -1)
    cams = compute_cams(
        model, batch, layers, method=method, targets=labels, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth
    )
    priors = {label: cam_prior(cams, segments, fusion, i) for i, label in enumerate(labels)}
    display_rule = "max" if fusion == "max" else "mean"
    fused = cams.fused(display_rule).cpu().numpy()
    cam_maps = {label: fused[i] for i, label in enumerate(labels)}
    timings["cam_s"] = time.perf_counter() - start

    neighbourhood = explainer.sample(
        image, num_samples=num_samples, seed=seed, segments=segments, progress=progress
    )
    timings["predict_s"] = neighbourhood.info["timings"]["predict_s"]
    start = time.perf_counter()
    legacy_maps = _legacy_maps(cams, labels) if cam_mode == "legacy" else None
    ours = neighbourhood.fit(labels=labels, prior=priors, cam_mode=cam_mode, cam_map=legacy_maps)
    lime = neighbourhood.fit(labels=labels, cam_mode="none")
    timings["fit_s"] = time.perf_counter() - start
    return CamLimeResult(labels, ours, lime, cams, priors, cam_maps, probabilities, neighbourhood, timings)


def _legacy_maps(cams: LayerCams, labels: list[int]) -> dict[int, np.ndarray]:
    """What the public code resized into (N,M): the layer-resolution CAM, min-max normalised (layers fused at
    the smallest layer's size)."""
    size = min((tuple(m.shape[-2:]) for m in cams.maps.values()), key=lambda hw: hw[0] * hw[1])
    fused = fuse_layer_maps(list(cams.maps.values()), size, rule="mean").cpu().numpy()
    return {label: fused[i] for i, label in enumerate(labels)}
