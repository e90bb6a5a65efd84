"""Class-activation priors: raw per-layer CAM maps (all on the model's device) and their fusion."""

from cam_ext.compute import FULLGRAD_KEY, LayerCams, compute_cams
from cam_ext.fusion import FUSION_RULES, fuse_layer_maps, fuse_segment_priors, minmax_normalise, upsample
from cam_ext.layers import LayerNotFoundError, layer_names, resolve_layer, resolve_layers
from cam_ext.methods import CAM_METHODS, CamMethod, get_cam_method
from cam_ext.model_state import evaluation_mode

__all__ = [
    "CAM_METHODS",
    "FULLGRAD_KEY",
    "FUSION_RULES",
    "CamMethod",
    "LayerCams",
    "LayerNotFoundError",
    "compute_cams",
    "evaluation_mode",
    "fuse_layer_maps",
    "fuse_segment_priors",
    "get_cam_method",
    "layer_names",
    "minmax_normalise",
    "resolve_layer",
    "resolve_layers",
    "upsample",
]
