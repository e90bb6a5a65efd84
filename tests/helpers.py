"""Tiny models, images and explainer budgets shared by the tests: no downloads, everything in milliseconds."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from skimage import data
from skimage.transform import resize
from torch import nn

from cnnxai.explainers import REGISTRY

ROOT = Path(__file__).resolve().parents[1]  # the repository


def make_tiny_cnn(num_classes: int = 4, seed: int = 0) -> nn.Module:
    """Conv-ReLU-Conv-BN-ReLU(inplace)-GAP-Linear, eval mode, deterministic weights."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )
    with torch.no_grad():  # non-trivial BN statistics, so FullGrad's BN biases are not zero
        model[3].running_mean.uniform_(-0.2, 0.2)
        model[3].running_var.uniform_(0.5, 1.5)
        model[3].bias.uniform_(-0.1, 0.1)
    return model.eval()


def small_photo(size: int = 48) -> np.ndarray:
    """skimage's chelsea resized to size x size, RGB uint8."""
    return (resize(data.chelsea(), (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)


# Small budgets: the shared ones by the flag they answer to, then each explainer's own (see --list).
FAST_SHARED = {"layers": ["4"], "num_samples": 40, "segmenter": "slic"}
FAST_OWN = {
    "rise": {"masks": 64},
    "ig": {"steps": 8},
    "guided_ig_gnl": {"steps": 8},
    "gradient_shap": {"samples": 4},
    "normlime": {"samples": 20, "clusters": 4},
    "normlime_logreg": {"samples": 20, "clusters": 4},
}
NORMLIME_CACHE = tempfile.mkdtemp(prefix="normlime-test-")  # never the user's ~/.cache


def fast_options(name: str, **overrides) -> dict:
    """Cheap options for explainer ``name``: the shared budgets it answers to, its own, then ``overrides``."""
    spec = REGISTRY.lookup(name)
    options = {
        option.name: FAST_SHARED[option.alias] for option in spec.options if option.alias in FAST_SHARED
    }
    options.update(FAST_OWN.get(name, {}))
    if name.startswith("normlime"):
        options["cache"] = NORMLIME_CACHE
    return {**options, **overrides}

# --model flags of a tiny CNN with ImageNet's 1000 outputs (tests.model_factories.tiny_cnn, so Ray workers load it too)
TINY_IMAGENET_MODEL = ["--model", "tests.model_factories:tiny_cnn", "--model-arg", "num_classes=1000"]
