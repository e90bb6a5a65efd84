"""MNIST-1D: the data generated offline with mnist1d's make_dataset, the 1-D CNN of
Siddhantmest/XAI-Methods-for-CNN trained in seconds and cached, the registry of 1-D explainers (window LIME,
GradLIME-1D, 1-D Grad-CAM, IG, RISE-1D, gradients) and the run behind MNIST1D.py."""

from cnnxai.signal1d import explainers  # noqa: F401  (registration)
from cnnxai.signal1d.data import MNIST1D, make_mnist1d, mnist1d_settings
from cnnxai.signal1d.deletion import deletion_curve, deletion_scores
from cnnxai.signal1d.explainers import window_prior, window_segments
from cnnxai.signal1d.model import MNIST1DConvNet, load_mnist1d_model
from cnnxai.signal1d.registry import (
    BATCH_SIZE,
    REGISTRY_1D,
    Explainer1DSpec,
    Signal1DContext,
    explain_1d,
    register_1d,
)

__all__ = [
    "BATCH_SIZE",
    "MNIST1D",
    "REGISTRY_1D",
    "Explainer1DSpec",
    "MNIST1DConvNet",
    "Signal1DContext",
    "deletion_curve",
    "deletion_scores",
    "explain_1d",
    "load_mnist1d_model",
    "make_mnist1d",
    "mnist1d_settings",
    "register_1d",
    "window_prior",
    "window_segments",
]
