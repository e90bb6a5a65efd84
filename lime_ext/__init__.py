"""LIME for images with class-activation priors: segmentation, the batched perturbation engine, the
prior-aware surrogate and the :class:`Explanation` object."""

from lime_ext.classifier import IMAGENET_MEAN, IMAGENET_STD, NumpyClassifier, TorchClassifier
from lime_ext.engine import PerturbationEngine, auto_batch_size, hidden_image
from lime_ext.explainer import CAM_MODES, CamLimeExplainer, Neighbourhood
from lime_ext.explanation import Explanation, LabelExplanation
from lime_ext.legacy import legacy_cam_matrix
from lime_ext.prior import is_uniform, segment_prior
from lime_ext.sampling import explanation_rng, sample_binary_masks
from lime_ext.segmentation import SEGMENTERS, relabel, segment_image
from lime_ext.surrogate import (
    FEATURE_SELECTIONS,
    cosine_distances_to_first,
    exponential_kernel,
    fit_surrogate,
)

__all__ = [
    "CAM_MODES",
    "FEATURE_SELECTIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SEGMENTERS",
    "CamLimeExplainer",
    "Explanation",
    "LabelExplanation",
    "Neighbourhood",
    "NumpyClassifier",
    "PerturbationEngine",
    "TorchClassifier",
    "auto_batch_size",
    "cosine_distances_to_first",
    "explanation_rng",
    "exponential_kernel",
    "fit_surrogate",
    "hidden_image",
    "is_uniform",
    "legacy_cam_matrix",
    "relabel",
    "sample_binary_masks",
    "segment_image",
    "segment_prior",
]
