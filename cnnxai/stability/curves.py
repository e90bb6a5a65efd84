"""Superpixel deletion and insertion curves of one image on the model, with every perturbed image cached.

An explanation's ranking (attribution descending) hides (deletion) or reveals (insertion) superpixels in at most
``steps`` steps; the curve is p(target) at each step over the fraction of superpixels hidden or shown, and its
score the normalised trapezoid area. Every mask row is predicted once per image: identical rankings cost nothing,
and rankings that agree on their first steps share those forwards.
"""

from __future__ import annotations

import numpy as np

from cnnxai.stability.measures import curve_counts, normalised_auc, ranking
from lime_ext import PerturbationEngine, TorchClassifier
from lime_ext.engine import HideColor


class SuperpixelCurves:
    """Deletion / insertion areas of rankings of one image's superpixels.

    Args:
        model: the classifier (torch module on its device).
        image: RGB uint8 (H,W,3), the model-input frame; segments: int (H,W) ids 0..M-1.
        target: the class whose probability is followed.
        hide_color: what a hidden superpixel shows (as the LIME neighbourhood: see ``lime_ext.hidden_image``).
        steps: at most this many steps; a step hides ceil(M/steps) superpixels.
        batch_size: images per forward pass (None: from the device).
    """

    def __init__(
        self,
        model,
        image: np.ndarray,
        segments: np.ndarray,
        target: int,
        hide_color: HideColor,
        steps: int,
        batch_size: int | None = None,
    ) -> None:
        self.engine = PerturbationEngine(image, segments, TorchClassifier(model), hide_color, batch_size)
        self.num_superpixels = self.engine.num_segments
        self.target = int(target)
        self.counts = curve_counts(self.num_superpixels, steps)
        self.fractions = self.counts / self.num_superpixels
        self._probability: dict[bytes, float] = {}
        self.forwards = 0  # perturbed images predicted so far (the cost of the curves)

    def _predict(self, masks: np.ndarray) -> np.ndarray:
        """p(target) (n,) of mask rows (n,M), predicting only the rows not seen before."""
        keys = [row.tobytes() for row in masks]
        missing = list(dict.fromkeys(key for key in keys if key not in self._probability))
        if missing:
            rows = np.frombuffer(b"".join(missing), dtype=np.uint8).reshape(len(missing), -1).copy()
            predicted = self.engine.predict(rows)[:, self.target]
            self.forwards += len(missing)
            self._probability.update(zip(missing, map(float, predicted), strict=True))
        return np.array([self._probability[key] for key in keys])

    def masks(self, attributions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Deletion and insertion masks (L+1,M) uint8 of the ranking of ``attributions`` (1 = shown)."""
        order = ranking(attributions)
        if len(order) != self.num_superpixels:
            raise ValueError(
                f"attributions have {len(order)} entries; the image has {self.num_superpixels} superpixels"
            )
        # Mask point i shows/hides the first counts[i] superpixels of the ranking; as sets, so ties cost nothing.
        first = np.zeros((len(self.counts), self.num_superpixels), dtype=np.uint8)
        position = np.empty(self.num_superpixels, dtype=np.int64)
        position[order] = np.arange(self.num_superpixels)
        first[:] = position[None, :] < self.counts[:, None]
        return 1 - first, first

    def areas(self, attributions: np.ndarray) -> tuple[float, float]:
        """(deletion AUC, insertion AUC) of the ranking of ``attributions`` (M,): lower / higher is better."""
        deletion, insertion = self.masks(attributions)
        values = self._predict(np.concatenate([deletion, insertion]))
        points = len(self.counts)
        return (
            normalised_auc(self.fractions, values[:points]),
            normalised_auc(self.fractions, values[points:]),
        )
