"""The explainer registry: every method of the suite behind one call, ``explain(name, model, image, target, ...)``.

Each returns an :class:`Attribution` whose ``map`` is float32 (H,W), signed, in the model-input frame, and
declares its options (``python -m cnnxai.explainers --list`` prints the names, descriptions and options).
"""

from cnnxai.explainers import (  # noqa: F401  (registration)
    baylime,
    cams,
    controls,
    gradients,
    guided,
    kernel_shap,
    lime_family,
    normlime,
    rise,
    sise,
)
from cnnxai.explainers.cam_lime_result import CamLimeResult
from cnnxai.explainers.lime_family import cam_lime, explain_image
from cnnxai.explainers.registry import (
    REGISTRY,
    Attribution,
    ExplainContext,
    ExplainerSpec,
    class_index,
    explain,
    get_explainer,
    make_context,
    register,
)

__all__ = [
    "REGISTRY",
    "Attribution",
    "CamLimeResult",
    "ExplainContext",
    "ExplainerSpec",
    "cam_lime",
    "class_index",
    "explain",
    "explain_image",
    "get_explainer",
    "make_context",
    "register",
]
