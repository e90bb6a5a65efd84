"""Class-activation maps: raw per-layer CAMs (all on the model's device), their fusion, and the per-superpixel
prior they give GradLIME / CamLIME (:mod:`cam_ext.priors`)."""

from cam_ext.compute import FULLGRAD_KEY, LayerCams, cam_refusal, compute_cams
from cam_ext.fusion import FUSION_RULES, fuse_layer_maps, minmax_normalise, upsample
from cam_ext.layers import (
    LayerNotFoundError,
    TokenLayout,
    layer_names,
    locate_layers,
    resolve_layer,
    resolve_layers,
    token_layout,
)
from cam_ext.methods import CAM_METHODS, CamMethod, get_cam_method
from cam_ext.priors import (
    PRIOR_FUSIONS,
    CamSettings,
    cam_prior,
    fuse_segment_priors,
    legacy_maps,
    segment_prior,
)

__all__ = [
    "CAM_METHODS",
    "FULLGRAD_KEY",
    "FUSION_RULES",
    "PRIOR_FUSIONS",
    "CamMethod",
    "CamSettings",
    "LayerCams",
    "LayerNotFoundError",
    "TokenLayout",
    "cam_prior",
    "cam_refusal",
    "compute_cams",
    "fuse_layer_maps",
    "fuse_segment_priors",
    "get_cam_method",
    "layer_names",
    "locate_layers",
    "legacy_maps",
    "minmax_normalise",
    "resolve_layer",
    "resolve_layers",
    "segment_prior",
    "token_layout",
    "upsample",
]
