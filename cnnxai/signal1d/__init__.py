"""MNIST-1D: the data generated offline from a seed, the seeds' 1-D CNN trained in seconds and cached, and
explainers of 1-D signals (window LIME, GradLIME-1D, 1-D Grad-CAM, IG, RISE-1D, gradients)."""

from cnnxai.signal1d.data import MNIST1D, make_mnist1d, mnist1d_settings
from cnnxai.signal1d.explainers import (
    DEFAULT_OPTIONS,
    METHODS_1D,
    deletion_curve,
    explain_1d,
    window_prior,
    window_segments,
)
from cnnxai.signal1d.model import MNIST1DConvNet, load_mnist1d_model

__all__ = [
    "DEFAULT_OPTIONS",
    "METHODS_1D",
    "MNIST1D",
    "MNIST1DConvNet",
    "deletion_curve",
    "explain_1d",
    "load_mnist1d_model",
    "make_mnist1d",
    "mnist1d_settings",
    "window_prior",
    "window_segments",
]
