"""LIME for images with per-superpixel priors: segmentation, the batched perturbation engine, the prior-aware
surrogate and the :class:`Explanation` object. It knows nothing of CAMs: a prior is a plain array (M,)."""

from lime_ext.adaptive import sample_until_settled
from lime_ext.classifier import IMAGENET_MEAN, IMAGENET_STD, NumpyClassifier, TorchClassifier
from lime_ext.engine import (
    PerturbationEngine,
    auto_batch_size,
    chosen_batch_sizes,
    forward_batches,
    hidden_image,
    set_gpu_share,
)
from lime_ext.explainer import (
    CAM_MODES,
    DEFAULT_CAM_MODE,
    CamLimeExplainer,
    Neighbourhood,
    NeighbourhoodSampler,
    fit_samples,
    predict_together,
)
from lime_ext.explanation import Explanation, LabelExplanation
from lime_ext.legacy import legacy_cam_matrix
from lime_ext.model_state import evaluation_mode, full_float32, module_device, seeded_torch, training_mode
from lime_ext.sampling import SAMPLINGS, explanation_rng, sample_binary_masks
from lime_ext.segmentation import SEGMENTERS, relabel, segment_image
from lime_ext.settings import AUTO, PROXIES, LimeSettings
from lime_ext.surrogate import (
    FEATURE_SELECTIONS,
    cosine_distances_to_first,
    exponential_kernel,
    fit_surrogate,
    is_uniform,
)

__all__ = [
    "AUTO",
    "CAM_MODES",
    "DEFAULT_CAM_MODE",
    "FEATURE_SELECTIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PROXIES",
    "SAMPLINGS",
    "SEGMENTERS",
    "CamLimeExplainer",
    "Explanation",
    "LabelExplanation",
    "LimeSettings",
    "Neighbourhood",
    "NeighbourhoodSampler",
    "NumpyClassifier",
    "PerturbationEngine",
    "TorchClassifier",
    "auto_batch_size",
    "chosen_batch_sizes",
    "cosine_distances_to_first",
    "evaluation_mode",
    "explanation_rng",
    "exponential_kernel",
    "fit_samples",
    "fit_surrogate",
    "forward_batches",
    "full_float32",
    "hidden_image",
    "is_uniform",
    "legacy_cam_matrix",
    "module_device",
    "predict_together",
    "relabel",
    "sample_binary_masks",
    "sample_until_settled",
    "seeded_torch",
    "set_gpu_share",
    "segment_image",
    "training_mode",
]
