"""The rest of the suite around lime_ext and cam_ext: models, preprocessing and the GradLIME/CamLIME pipeline.

The captum-style classes (``cnnxai.GradLIME(model).attribute(inputs, target)``) and Quantus's
``cnnxai.quantus_explain_func`` are imported on first use (:mod:`cnnxai.attribute`), so ``import cnnxai`` stays
light for the command lines.
"""

from cnnxai.version import __version__

_API = ("Explainer", "GradLIME", "CamLIME", "LIME", "quantus_explain_func")
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        from cnnxai import attribute

        return getattr(attribute, name)
    raise AttributeError(f"module 'cnnxai' has no attribute {name!r}")
