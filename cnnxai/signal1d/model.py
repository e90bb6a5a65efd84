"""The 1-D CNN of Siddhantmest/XAI-Methods-for-CNN for MNIST-1D (docs/method.md#mnist-1d), in PyTorch, trained in
seconds and cached."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnxai.signal1d.data import NUM_CLASSES, SIGNAL_LENGTH, make_mnist1d
from cnnxai.synthetic.training import accuracy, load_or_train, train_model

MODEL_NAME = "mnist1d_cnn"
# Layers a 1-D CAM can hook: reluN is conv block N's output after its ReLU, which is what that repository's Keras layer
# Conv1D(activation='relu') outputs (xai_utils' grad_cam hooks it); convN is the same block before its ReLU.
CAM_LAYERS = ("relu1", "relu2", "relu3", "conv1", "conv2", "conv3")
DEFAULT_CAM_LAYER = "relu3"  # the last conv block, Grad-CAM's usual choice

# Training defaults, measured on this project's 2-core CPU: 20 epochs of Adam (lr 1e-2, cosine, batch 128) =
# 640 steps reach 0.94 test accuracy (the literature's CNN: 0.94) in about 5 s. lr 3e-3 / batch 64 needed 30
# epochs for 0.93; that repository's Keras recipe (SGD 0.01, 200 epochs, L2 5e-4) would take minutes.
DEFAULT_EPOCHS = 20
DEFAULT_LEARNING_RATE = 1e-2
DEFAULT_BATCH_SIZE = 128
DEFAULT_WEIGHT_DECAY = 0.0
TRAIN_THREADS = 1  # see torch_threads


class MNIST1DConvNet(nn.Module):
    """Conv1d(1,25,5) ReLU -> Conv1d(25,25,3) ReLU -> Conv1d(25,25,3) ReLU -> Flatten -> Linear(25 L, 10).

    'same' padding and no pooling, so every feature map keeps the signal's length L (a 1-D Grad-CAM needs
    no upsampling). Input (B,1,L) or (B,L) float; output (B,10) logits (explainers apply the softmax).
    ReLUs are modules, not functions, so hook-based explainers see them; the layers are named ``conv1..3``
    and ``relu1..3`` so a CAM layer can be chosen by name (see :data:`CAM_LAYERS`).
    """

    def __init__(
        self, length: int = SIGNAL_LENGTH, channels: int = 25, num_classes: int = NUM_CLASSES
    ) -> None:
        super().__init__()
        self.length = length
        self.conv1 = nn.Conv1d(1, channels, 5, padding="same")
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv1d(channels, channels, 3, padding="same")
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv1d(channels, channels, 3, padding="same")
        self.relu3 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels * length, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            x = x[:, None]
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = self.relu3(self.conv3(x))
        return self.fc(self.flatten(x))


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` intra-op CPU threads (None: unchanged), restoring the count afterwards.

    This network is too small for intra-op parallelism to pay: with two threads on two cores that another
    process also uses, OpenMP's waiting threads made training 50x slower (measured 213 s against 4.5 s with
    one thread); with one thread it is as fast as with two on an idle machine.
    """
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def model_settings(
    seed: int = 0,
    epochs: int = DEFAULT_EPOCHS,
    data_seed: int = 42,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
) -> dict[str, Any]:
    """Everything that determines the trained weights: the cache key of :func:`load_mnist1d_model`."""
    return {
        "architecture": "conv5-conv3-conv3-fc, 25 channels",
        "data": "mnist1d.make_dataset defaults, 5000 signals, 4000 train / 1000 test",
        "data_seed": int(data_seed),
        "seed": int(seed),
        "epochs": int(epochs),
        "learning_rate": float(learning_rate),
        "batch_size": int(batch_size),
        "weight_decay": float(weight_decay),
        "optimiser": "adam, cosine schedule",
        "threads": TRAIN_THREADS,  # the float reduction order, hence the exact weights, depends on it
    }


def load_mnist1d_model(
    seed: int = 0,
    epochs: int = DEFAULT_EPOCHS,
    cache_dir: str | Path | None = None,
    retrain: bool = False,
    data_seed: int = 42,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
) -> tuple[MNIST1DConvNet, dict[str, Any]]:
    """The trained 1-D CNN (eval mode, CPU) and its info: train/test accuracy, training seconds, settings,
    ``cache_file`` and ``loaded_from_cache``. Trained on the CPU (a few seconds) unless already cached under
    ``cache_dir`` (default $CNNXAI_CACHE or ~/.cache/cnnxai/models) for the same settings."""
    settings = model_settings(seed, epochs, data_seed, learning_rate, batch_size, weight_decay)

    def train(model: nn.Module) -> dict[str, Any]:
        data = make_mnist1d(seed=data_seed)
        x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)  # device-ok: training data, on the host
        x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)  # device-ok: training data, on the host
        start = time.perf_counter()
        with torch_threads(TRAIN_THREADS):
            losses = train_model(
                model, x, [y], F.cross_entropy, epochs, seed, learning_rate, batch_size, weight_decay
            )
        seconds = time.perf_counter() - start
        return {
            "train_accuracy": accuracy(model, x, y),
            "test_accuracy": accuracy(model, x_test, y_test),
            "train_seconds": round(seconds, 3),
            "final_loss": losses[-1],
            "torch_threads": TRAIN_THREADS,
        }

    model, info = load_or_train(MODEL_NAME, settings, MNIST1DConvNet, train, cache_dir, retrain)
    return model, info
