"""The explainer registry: every method of the suite behind one call, ``explain(name, model, image, target, ...)``.

Each returns an :class:`Attribution` whose ``map`` is float32 (H,W), signed, in the model-input frame.
``python -m cnnxai.explainers --list`` prints the registered names.
"""

from cnnxai.explainers import cams, controls, gradients, guided, kernel_shap, lime_family, rise  # noqa: F401  (registration)
from cnnxai.explainers.registry import REGISTRY, Attribution, ExplainContext, explain, get_explainer, register

__all__ = ["REGISTRY", "Attribution", "ExplainContext", "explain", "get_explainer", "register"]
