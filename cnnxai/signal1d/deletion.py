"""A ground-truth-free check of 1-D attributions: the RISE paper's deletion metric on signals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from cnnxai.signal1d.registry import BATCH_SIZE, softmax_batches
from lime_ext import TorchClassifier


def deletion_curve(
    model: nn.Module,
    signal: np.ndarray,
    target: int,
    attribution: np.ndarray,
    batch_size: int = BATCH_SIZE,
) -> tuple[np.ndarray, float]:
    """Zero (= the data set's mean) the samples one at a time in decreasing attribution order (ties by position)
    and record P(target). Returns (curve (L+1,), AUC by the trapezoid rule on [0,1]); lower is better (the
    class's evidence goes first)."""
    signal = np.asarray(signal, dtype=np.float32)
    length = signal.shape[0]
    order = np.argsort(-np.asarray(attribution, dtype=np.float64), kind="stable")
    keep = np.ones((length + 1, length), dtype=np.float32)
    for step in range(1, length + 1):
        keep[step:, order[step - 1]] = 0.0
    classifier = TorchClassifier(model, mean=None, std=None)
    signals = torch.from_numpy(keep * signal[None]).to(classifier.device)
    probabilities = softmax_batches(
        classifier, len(signals), lambda start, stop: signals[start:stop], batch_size
    )
    curve = probabilities[:, target].cpu().numpy().astype(np.float64)
    auc = (curve.sum() - curve[0] / 2 - curve[-1] / 2) / length
    return curve, float(auc)


def deletion_scores(
    model: nn.Module,
    signals: np.ndarray,
    targets: Sequence[int],
    maps: Mapping[str, np.ndarray],
    seed: int,
    batch_size: int = BATCH_SIZE,
) -> dict[str, list[float]]:
    """Deletion AUC (lower = better) of each method's maps (name -> (R,L)) on each of the R signals, plus
    'random': random orders drawn from ``seed``, the score of an attribution that knows nothing."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2]))
    scores = {
        name: [
            deletion_curve(model, s, t, m, batch_size)[1]
            for s, t, m in zip(signals, targets, maps[name], strict=True)
        ]
        for name in maps
    }
    scores["random"] = [
        deletion_curve(model, s, t, rng.random(len(s)), batch_size)[1]
        for s, t in zip(signals, targets, strict=True)
    ]
    return scores
