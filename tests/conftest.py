"""Tiny models and images shared by the tests: no downloads, everything in milliseconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize
from torch import nn


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


@pytest.fixture
def tiny_cnn() -> nn.Module:
    return make_tiny_cnn()


@pytest.fixture
def photo() -> np.ndarray:
    return small_photo()
