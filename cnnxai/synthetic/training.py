"""Training the small ground-truth models in seconds on a CPU, and caching them in a file keyed by their settings."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnxai.outputs import json_fallback
from lime_ext import evaluation_mode, seeded_torch, training_mode

CACHE_ENV = "CNNXAI_CACHE"
CACHE_FORMAT = 1  # bump when a change of code (architecture, training loop) must invalidate cached models


def cache_directory(explicit: str | Path | None = None) -> Path:
    """Where trained models are kept: ``explicit``, else $CNNXAI_CACHE, else ~/.cache/cnnxai/models."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path.home() / ".cache" / "cnnxai" / "models"


def settings_key(settings: dict[str, Any]) -> str:
    """A short hash of JSON-able settings (key order ignored): the cache file's name."""
    text = json.dumps({"format": CACHE_FORMAT, **settings}, sort_keys=True, default=json_fallback)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_model(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: Sequence[torch.Tensor],
    loss: Callable[..., torch.Tensor],
    epochs: int,
    seed: int,
    learning_rate: float = 3e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
) -> list[float]:
    """Adam with a cosine schedule and shuffled mini-batches drawn from ``seed``, minimising
    ``loss(model(inputs[rows]), *[t[rows] for t in targets])``; returns the mean loss of each epoch. ``inputs``
    (N,...) float and every target (N,...), on the model's device. The one training loop of the synthetic models;
    the model is in train mode for the loop only, its modes restored after."""
    generator = torch.Generator().manual_seed(int(seed))  # device-ok: a host generator: the same order on every device
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    steps = epochs * ((len(inputs) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(steps, 1))
    losses = []
    with training_mode(model):
        for _ in range(epochs):
            order = torch.randperm(len(inputs), generator=generator).to(inputs.device)  # device-ok: a host generator: the same order on every device
            total = 0.0
            for start in range(0, len(inputs), batch_size):
                rows = order[start : start + batch_size]
                value = loss(model(inputs[rows]), *[t[rows] for t in targets])
                optimiser.zero_grad(set_to_none=True)
                value.backward()
                optimiser.step()
                schedule.step()
                total += value.detach().item() * len(rows)
            losses.append(total / len(inputs))
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` (in eval mode for the call, its modes restored after) on (N,...) inputs."""
    with evaluation_mode(model):
        predicted = torch.cat(
            [model(inputs[i : i + batch_size]).argmax(1) for i in range(0, len(inputs), batch_size)]
        )
    return float((predicted == labels).float().mean())


def load_or_train(
    name: str,
    settings: dict[str, Any],
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module], dict[str, Any]],
    directory: str | Path | None = None,
    retrain: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """The model ``name`` for ``settings``: loaded from ``<directory>/<name>-<key>.pt`` when it is there,
    else built (with torch's RNG seeded from ``settings['seed']``), trained by ``train(model) -> info`` and
    saved atomically. Returns (model in eval mode on the CPU, info) where info holds what ``train`` reported
    (e.g. test accuracy), the settings, the cache file and whether it was loaded. A cache file that cannot be
    read is trained again (with a warning): it is only a cache.
    """
    folder = cache_directory(directory)
    path = folder / f"{name}-{settings_key(settings)}.pt"
    model = _built(build, int(settings.get("seed", 0)))
    if path.is_file() and not retrain:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(payload["state_dict"])
            info = json.loads(payload["info"])
            return model.eval(), {**info, "cache_file": str(path), "loaded_from_cache": True}
        except Exception as error:  # noqa: BLE001 (any unreadable cache file is retrained)
            warnings.warn(f"cached model {path} could not be read ({error}); training it again", stacklevel=2)
            model = _built(build, int(settings.get("seed", 0)))
    with seeded_torch(int(settings.get("seed", 0))):  # the synthetic models train on the CPU
        trained = train(model)
    info = {"name": name, "settings": settings, **trained}
    folder.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    torch.save({"state_dict": model.state_dict(), "info": json.dumps(info, default=json_fallback)}, temporary)
    os.replace(temporary, path)
    return model.eval(), {**info, "cache_file": str(path), "loaded_from_cache": False}


def _built(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    with seeded_torch(seed):
        return build()
