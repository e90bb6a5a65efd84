"""Channel weightings of the CAM family, in torch on the model's device.

Each formula is the one pytorch-grad-cam 1.5.x implements in numpy (``get_cam_weights`` /
``get_cam_image`` of its method classes; docs/method.md#cam-methods); tests compare ours with theirs on small
models. Every function maps activations ``A`` and gradients ``G`` of shape (B,K,h,w) to the map
*before* the ReLU, shape (B,h,w). The perturbation methods (ScoreCAM, AblationCAM) and FullGrad live
in :mod:`cam_ext.forward_methods` because they need extra forward passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

SPATIAL = (2, 3)


def first_component_projection(weighted: torch.Tensor) -> torch.Tensor:
    """Project each image's (hw, K) activations, mean-centred, on their first right singular vector.

    Shape (B,K,h,w) -> (B,h,w). SVD leaves the sign arbitrary (an EigenCAM map can come out negated and
    then vanish under the ReLU). We fix it as Seg-Eigen-CAM does: flip when
    |min| > |max|, so the dominant lobe is positive. pytorch-grad-cam's ``get_2d_projection`` does not flip.
    """
    weighted = torch.nan_to_num(weighted.float())
    batch, channels, height, width = weighted.shape
    flat = weighted.reshape(batch, channels, height * width).transpose(1, 2)  # (B, hw, K)
    flat = flat - flat.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(flat, full_matrices=False)
    projection = flat @ vh[:, 0, :, None]  # (B, hw, 1)
    projection = projection.reshape(batch, height, width)
    flip = projection.amin(dim=(1, 2)).abs() > projection.amax(dim=(1, 2)).abs()
    return torch.where(flip[:, None, None], -projection, projection)


def _weighted_sum(weights: torch.Tensor, acts: torch.Tensor, eigen_smooth: bool) -> torch.Tensor:
    weighted = weights[:, :, None, None] * acts
    return first_component_projection(weighted) if eigen_smooth else weighted.sum(dim=1)


def _reduce(elementwise: torch.Tensor, eigen_smooth: bool) -> torch.Tensor:
    return first_component_projection(elementwise) if eigen_smooth else elementwise.sum(dim=1)


def gradcam(acts: torch.Tensor, grads: torch.Tensor, eigen_smooth: bool = False) -> torch.Tensor:
    """Grad-CAM: w_k = mean_uv G_k."""
    return _weighted_sum(grads.mean(dim=SPATIAL), acts, eigen_smooth)


def hirescam(acts: torch.Tensor, grads: torch.Tensor, eigen_smooth: bool = False) -> torch.Tensor:
    """HiResCAM: sum_k G_k * A_k (element-wise, then channel sum)."""
    return _reduce(grads * acts, eigen_smooth)


def gradcam_elementwise(acts: torch.Tensor, grads: torch.Tensor, eigen_smooth: bool = False) -> torch.Tensor:
    """Grad-CAM element-wise: sum_k ReLU(G_k * A_k)."""
    return _reduce(torch.relu(grads * acts), eigen_smooth)


def gradcam_plusplus(acts: torch.Tensor, grads: torch.Tensor, eigen_smooth: bool = False) -> torch.Tensor:
    """Grad-CAM++: w_k = sum_uv ReLU(G) a, a = G^2 / (2 G^2 + sum_uv(A_k) G^3 + 1e-6), a = 0 where G = 0."""
    grads_2 = grads**2
    grads_3 = grads_2 * grads
    sum_acts = acts.sum(dim=SPATIAL, keepdim=True)
    alpha = grads_2 / (2 * grads_2 + sum_acts * grads_3 + 1e-6)
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    weights = (torch.relu(grads) * alpha).sum(dim=SPATIAL)
    return _weighted_sum(weights, acts, eigen_smooth)


def xgradcam(acts: torch.Tensor, grads: torch.Tensor, eigen_smooth: bool = False) -> torch.Tensor:
    """XGrad-CAM: w_k = sum_uv G_k A_k / (sum_uv A_k + 1e-7)."""
    sum_acts = acts.sum(dim=SPATIAL, keepdim=True)
    weights = (grads * acts / (sum_acts + 1e-7)).sum(dim=SPATIAL)
    return _weighted_sum(weights, acts, eigen_smooth)


def layercam(acts: torch.Tensor, grads: torch.Tensor, eigen_smooth: bool = False) -> torch.Tensor:
    """LayerCAM: sum_k ReLU(G_k) * A_k."""
    return _reduce(torch.relu(grads) * acts, eigen_smooth)


def eigencam(
    acts: torch.Tensor, grads: torch.Tensor | None = None, eigen_smooth: bool = False
) -> torch.Tensor:
    """EigenCAM: first principal component of the activations (class-agnostic)."""
    return first_component_projection(acts)


def eigengradcam(acts: torch.Tensor, grads: torch.Tensor, eigen_smooth: bool = False) -> torch.Tensor:
    """EigenGrad-CAM: first principal component of G * A."""
    return first_component_projection(grads * acts)


@dataclass(frozen=True)
class CamMethod:
    """One CAM variant: its name, whether it needs the target's gradients, and how the map is formed.

    ``kind`` is ``'gradient'`` (formula on A and G from one forward+backward), ``'activation'`` (A only),
    ``'perturbation'`` (channel weights from extra forward passes) or ``'fullgrad'`` (input-resolution).
    """

    name: str
    kind: str
    formula: Callable[..., torch.Tensor] | None
    gradcam_class: str
    description: str


CAM_METHODS: dict[str, CamMethod] = {
    m.name: m
    for m in [
        CamMethod(
            "gradcam",
            "gradient",
            gradcam,
            "GradCAM",
            "Grad-CAM: channels weighted by mean gradient (fast, generic)",
        ),
        CamMethod(
            "hirescam",
            "gradient",
            hirescam,
            "HiResCAM",
            "HiResCAM: element-wise gradient x activation (fine-grained)",
        ),
        CamMethod(
            "gradcam++",
            "gradient",
            gradcam_plusplus,
            "GradCAMPlusPlus",
            "Grad-CAM++: positive higher-order gradient weights (several objects)",
        ),
        CamMethod(
            "scorecam",
            "perturbation",
            None,
            "ScoreCAM",
            "Score-CAM: channels weighted by the softmax of masked-input scores",
        ),
        CamMethod(
            "xgradcam",
            "gradient",
            xgradcam,
            "XGradCAM",
            "XGrad-CAM: activation-normalised gradient weights (noisy inputs)",
        ),
        CamMethod(
            "ablationcam",
            "perturbation",
            None,
            "AblationCAM",
            "Ablation-CAM: relative score drop when a channel is zeroed",
        ),
        CamMethod(
            "eigencam",
            "activation",
            eigencam,
            "EigenCAM",
            "Eigen-CAM: first principal component of the activations (class-agnostic)",
        ),
        CamMethod(
            "eigengradcam",
            "gradient",
            eigengradcam,
            "EigenGradCAM",
            "EigenGrad-CAM: first principal component of gradient x activation",
        ),
        CamMethod(
            "layercam",
            "gradient",
            layercam,
            "LayerCAM",
            "LayerCAM: positive gradients x activations, per location",
        ),
        CamMethod(
            "fullgrad",
            "fullgrad",
            None,
            "FullGrad",
            "FullGrad: input-gradient and bias-gradient maps of all layers (ignores layers)",
        ),
        CamMethod(
            "gradcamelementwise",
            "gradient",
            gradcam_elementwise,
            "GradCAMElementWise",
            "Grad-CAM element-wise: sum of ReLU(gradient x activation)",
        ),
    ]
}


def get_cam_method(name: str) -> CamMethod:
    """Look a method up by name (case-insensitive; ``gradcampp`` is accepted for ``gradcam++``)."""
    key = name.strip().lower().replace("gradcampp", "gradcam++")
    if key not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {name!r}; choose one of: {', '.join(CAM_METHODS)}")
    return CAM_METHODS[key]
