"""Models the ``module.path:factory`` form of ``--model`` builds in the tests (tests/cnnxai/test_your_model.py
and docs/your-model.md): tiny, random weights, made in milliseconds."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from tests.helpers import make_tiny_cnn


def tiny_vit(
    image_size: int = 96, patch_size: int = 16, num_classes: int = 5, seed: int = 0
) -> VisionTransformer:
    """A 2-layer torchvision ViT (hidden 16) with a random head (torchvision starts it at zero: no gradients)."""
    torch.manual_seed(seed)
    model = VisionTransformer(image_size=image_size, patch_size=patch_size, num_layers=2, num_heads=2,
                              hidden_dim=16, mlp_dim=32, num_classes=num_classes)  # fmt: skip
    nn.init.normal_(model.heads.head.weight, std=0.5)
    return model.eval()


def tiny_cnn(num_classes: int = 4) -> nn.Module:
    """tests.helpers.make_tiny_cnn: Conv-ReLU-Conv-BN-ReLU-GAP-Linear."""
    return make_tiny_cnn(num_classes)


def flat_mlp() -> nn.Module:
    """No spatial layer at all: no default CAM layer can be found."""
    torch.manual_seed(0)
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 3)).eval()
