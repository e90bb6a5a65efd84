"""The explainer registry: every method of the suite behind one call, ``explain(name, model, image, target, ...)``.

Each returns an :class:`Attribution` whose ``map`` is float32 (H,W), signed, in the model-input frame.
``python -m cnnxai.explainers --list`` prints the registered names.
"""

from cnnxai.explainers import (  # noqa: F401  (registration)
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
from cnnxai.explainers.registry import REGISTRY, Attribution, ExplainContext, explain, get_explainer, register

__all__ = ["REGISTRY", "Attribution", "ExplainContext", "explain", "get_explainer", "register"]
