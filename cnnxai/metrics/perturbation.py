"""Perturbed copies of one image, built in batches on the model's device, and the target's scores on them.

A perturbation metric is a list of perturbed inputs and what the model says about each. Quantus builds each
copy in numpy and predicts it alone; here a metric describes copy ``i`` as a feature mask (and a fill value),
:func:`replace` builds a whole batch of them with one ``where`` on the device, and :class:`TargetScorer` runs
the batch and keeps the target's logit and probability.

Features: with ``unit='pixel'`` (default) a feature is a pixel and perturbing it sets all its channels, the
definition of the public CamLIME repository's MyFaithfulness.py (Quantus 0.5.3, the papers) for an (H,W) map;
with ``unit='element'`` a feature is one colour value and the map is repeated over the channels, which is what
Quantus 0.6.0's batched FaithfulnessCorrelation, FaithfulnessEstimate and MonotonicityCorrelation do on RGB
input (three times as many groups). The two are the same on single-channel input.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from lime_ext import TorchClassifier, auto_batch_size, forward_batches

FEATURE_UNITS = ("pixel", "element")


class FeatureView:
    """The features of an input ``x`` (C,H,W) for one unit: ``values`` (K,F), K values per feature."""

    def __init__(self, x: torch.Tensor, unit: str = "pixel") -> None:
        if unit not in FEATURE_UNITS:
            raise ValueError(f"unknown feature unit {unit!r}; choose one of {', '.join(FEATURE_UNITS)}")
        self.shape = tuple(x.shape)
        self.unit = unit
        channels, height, width = self.shape
        self.values = x.reshape(channels, height * width) if unit == "pixel" else x.reshape(1, -1)
        self.num_features = self.values.shape[1]
        # Copies of an (H,W) map that Quantus's sums and means run over: one per channel for 'element'.
        self.map_copies = 1 if unit == "pixel" else channels

    def attribution(self, attribution: np.ndarray) -> np.ndarray:
        """An (H,W) map as one value per feature (F,), repeated over channels for 'element' (as Quantus 0.6)."""
        if self.unit == "pixel":
            return attribution.reshape(-1)
        return np.broadcast_to(attribution, self.shape).reshape(-1)

    def index_masks(self, indices: np.ndarray) -> torch.Tensor:
        """(b,k) feature indices -> (b,F) boolean masks on the device."""
        rows = torch.as_tensor(np.ascontiguousarray(indices), dtype=torch.long, device=self.values.device)
        masks = torch.zeros((len(rows), self.num_features), dtype=torch.bool, device=self.values.device)
        return masks.scatter_(1, rows, True)

    def replace(self, masks: torch.Tensor, fills: torch.Tensor) -> torch.Tensor:
        """Copies (b,C,H,W) of the input with the masked features (b,F) set to ``fills`` (b,) (one value each)."""
        return replace(self.values, masks, fills.to(self.values.dtype)[:, None, None]).reshape(
            -1, *self.shape
        )


def replace(base: torch.Tensor, masks: torch.Tensor, replacement: torch.Tensor) -> torch.Tensor:
    """``base`` (K,F) where ``masks`` (b,F) is False, ``replacement`` (broadcast to (b,K,F)) where True.

    One ``torch.where``. The LIME engine's float-mask ``addcmul`` (``hidden + keep * (image - hidden)``) rounds,
    so it would change the metrics' values; the exact float forms (``base * (1 - m) + m * f``, ``lerp``) give
    the same bits as this but take more passes over the batch and are not reliably faster on these shapes
    (``bench/bench_kernels.py``).
    """
    return torch.where(masks[:, None, :], replacement, base[None])


class TargetScorer:
    """Runs batches of model inputs and keeps the target class's logit and softmax probability.

    Args:
        model: the classifier; it gets normalised inputs (N,C,H,W).
        target: the explained class.
        batch_size: inputs per forward pass; None chooses from the device (see ``auto_batch_size``).
        tf32: allow TF32 on CUDA (faster, less exact; see :func:`lime_ext.full_float32`). Off by default.
        input_size: (H,W) of the inputs, for the batch size chosen from the device.
    """

    def __init__(
        self,
        model: nn.Module,
        target: int,
        batch_size: int | None = None,
        tf32: bool = False,
        input_size: tuple[int, int] = (224, 224),
    ) -> None:
        self.classifier = TorchClassifier(model, output="logits", tf32=tf32)
        self.device = self.classifier.device
        self.target = int(target)
        self.batch_size = int(batch_size) if batch_size else auto_batch_size(self.device, *input_size)
        self.forwards = 0  # model inputs scored so far (for benchmarks and tests)

    def outputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model's full output (N,K) float32 on a few inputs, in one forward."""
        with self.classifier.session():
            self.forwards += len(inputs)
            return self.classifier.forward_prepared(inputs)

    def __call__(
        self, count: int, build: Callable[[int, int], torch.Tensor]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores of ``count`` inputs, ``build(start, stop)`` making inputs start..stop-1 as (b,C,H,W), run
        through the suite's one batch loop (:func:`lime_ext.forward_batches`) in the classifier's session.

        Returns (logits, probabilities) of the target, float64 (count,).
        """
        logits, probabilities = [], []
        for start, stop, out in forward_batches(self.classifier, count, build, self.batch_size):
            self.forwards += stop - start
            logits.append(out[:, self.target])
            probabilities.append(torch.softmax(out, dim=-1)[:, self.target])
        if not logits:
            empty = np.zeros(0)
            return empty, empty
        return (
            torch.cat(logits).double().cpu().numpy(),
            torch.cat(probabilities).double().cpu().numpy(),
        )
