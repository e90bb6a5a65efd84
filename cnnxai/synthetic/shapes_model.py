"""The small CNN of the synthetic benchmark, trained in seconds on a CPU and cached by its settings."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnxai.synthetic.shapes import CLASSES, SyntheticSettings, make_synthetic
from cnnxai.synthetic.training import accuracy, load_or_train, train_model
from lime_ext import IMAGENET_MEAN, IMAGENET_STD

CAM_LAYER = "features.conv4"  # the last convolution block (16x16 at 64x64 input): the default CAM layer
SISE_LAYERS = ("features.conv2", "features.conv4")  # the last block at 32x32 and at 16x16, low to high level


class ShapesNet(nn.Sequential):
    """conv(8)-pool-conv(16)-pool-conv(32)-conv(32), each with batch norm and a ReLU module, then global average
    pooling and a linear layer (15.6k parameters; an epoch of 4000 images takes 3-4 s on 2 CPU cores).

    Input: ImageNet-normalised (B,3,H,W) (what :class:`lime_ext.TorchClassifier` feeds); output logits (B,K).
    Global average pooling after the last block makes Grad-CAM on ``features.conv4`` the original CAM.
    """

    def __init__(self, num_classes: int = len(CLASSES), width: int = 8) -> None:
        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

        features = nn.Sequential()
        features.add_module("conv1", block(3, width))
        features.add_module("pool1", nn.MaxPool2d(2))
        features.add_module("conv2", block(width, 2 * width))
        features.add_module("pool2", nn.MaxPool2d(2))
        features.add_module("conv3", block(2 * width, 4 * width))
        features.add_module("conv4", block(4 * width, 4 * width))
        super().__init__()
        self.add_module("features", features)
        self.add_module("pool", nn.AdaptiveAvgPool2d(1))
        self.add_module("flatten", nn.Flatten())
        self.add_module("classifier", nn.Linear(4 * width, num_classes))


def normalised(images: np.ndarray) -> torch.Tensor:
    """RGB uint8 (N,H,W,3) -> ImageNet-normalised float (N,3,H,W), the classifier's own input."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0  # device-ok: training data, on the host
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]  # device-ok: training data, on the host
    std = torch.tensor(IMAGENET_STD)[:, None, None]  # device-ok: training data, on the host
    return (x - mean) / std


def load_shapes_model(
    settings: SyntheticSettings,
    train_images: int = 4000,
    test_images: int = 1000,
    epochs: int = 10,
    cache_dir: str | Path | None = None,
    retrain: bool = False,
) -> tuple[ShapesNet, dict]:
    """The trained :class:`ShapesNet` for ``settings`` (from the cache, or trained now on ``train_images`` images of
    the 'train' split and tested on the first ``test_images`` of 'test'). Info: accuracies, seconds, losses."""
    key = {**asdict(settings), "train_images": train_images, "test_images": test_images, "epochs": epochs}

    def train(model: ShapesNet) -> dict:
        start = time.perf_counter()
        train_set = make_synthetic(settings, "train", train_images)
        test_set = make_synthetic(settings, "test", test_images)
        generated = time.perf_counter() - start
        x, y = normalised(train_set.images), torch.from_numpy(train_set.labels)  # device-ok: training labels, on the host
        with torch.autograd.set_grad_enabled(True):
            losses = train_model(
                model, x, [y], F.cross_entropy, epochs, settings.seed, learning_rate=5e-3, batch_size=64
            )
        return {
            "train_accuracy": accuracy(model, x, y),
            "test_accuracy": accuracy(model, normalised(test_set.images), torch.from_numpy(test_set.labels)),  # device-ok: training labels, on the host
            "losses": [round(v, 5) for v in losses],
            "data_seconds": round(generated, 2),
            "train_seconds": round(time.perf_counter() - start - generated, 2),
            "classes": list(CLASSES),
        }

    model, info = load_or_train("shapes_net", key, lambda: ShapesNet(len(CLASSES)), train, cache_dir, retrain)
    return model, info
