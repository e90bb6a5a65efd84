"""The result of a (Grad/Cam)LIME fit: per-label weights, attributions, priors and fit quality."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LabelExplanation:
    """The surrogate of one explained class.

    Attributes (M = number of superpixels):
        weights: (M,) ridge coefficients w on the design columns (0 where not selected).
        attributions: (M,) the effect b of switching each superpixel on: b = a * w in the CAM modes,
            w in 'none' and 'legacy'. This is what rankings, maps and figures use.
        prior: (M,) the CAM prior a (ones for plain LIME; for 'legacy', the column mean of the
            (N,M) CAM matrix, which has no per-superpixel meaning).
        ranking: (K,) the selected superpixels, ordered by |attribution| descending.
        covariance: (M,M) posterior covariance of the attributions when the surrogate is Bayesian (BayLIME),
            else None.
    """

    label: int
    weights: np.ndarray
    attributions: np.ndarray
    prior: np.ndarray
    intercept: float
    score: float
    local_pred: float
    ranking: np.ndarray
    covariance: np.ndarray | None = None

    @property
    def local_exp(self) -> list[tuple[int, float]]:
        """lime's ``local_exp[label]``: (segment, attribution) pairs, by |attribution| descending."""
        return [(int(j), float(self.attributions[j])) for j in self.ranking]


@dataclass(frozen=True)
class Explanation:
    """An explanation of one image.

    ``image`` uint8 (H,W,3) and ``segments`` int (H,W) are in the model-input frame; ``predictions`` (C,)
    are the classifier's outputs on the unperturbed image; ``labels`` maps each explained class to its
    :class:`LabelExplanation`; ``top_labels`` lists classes by descending prediction when they were chosen
    that way.
    """

    image: np.ndarray
    segments: np.ndarray
    cam_mode: str
    labels: dict[int, LabelExplanation]
    predictions: np.ndarray
    top_labels: list[int] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def num_segments(self) -> int:
        return int(self.segments.max()) + 1

    @property
    def local_exp(self) -> dict[int, list[tuple[int, float]]]:
        return {label: exp.local_exp for label, exp in self.labels.items()}

    def _label(self, label: int | None) -> LabelExplanation:
        if label is None:
            label = self.top_labels[0] if self.top_labels else next(iter(self.labels))
        if label not in self.labels:
            raise KeyError(f"label {label} was not explained; explained labels: {sorted(self.labels)}")
        return self.labels[label]

    def attribution_map(self, label: int | None = None, top_k: int | None = None) -> np.ndarray:
        """Superpixel attributions painted on the segments: float32 (H,W), signed.

        ``top_k`` keeps the k superpixels with the largest |attribution| and sets the rest to 0.
        """
        exp = self._label(label)
        values = exp.attributions.astype(np.float32)
        if top_k is not None:
            kept = np.zeros_like(values)
            keep = exp.ranking[: max(int(top_k), 0)]
            kept[keep] = values[keep]
            values = kept
        return values[self.segments]

    def get_image_and_mask(
        self,
        label: int | None = None,
        positive_only: bool = True,
        negative_only: bool = False,
        hide_rest: bool = False,
        num_features: int = 5,
        min_weight: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """lime's ``ImageExplanation.get_image_and_mask``, on the attributions.

        Returns (image, mask): with ``positive_only`` (or ``negative_only``) the first ``num_features``
        superpixels of that sign above ``min_weight`` get mask 1; with neither, the first ``num_features``
        by |attribution| get mask +1 / -1 and are tinted green / red (channel set to the image max).
        ``hide_rest`` blacks out everything else.
        """
        if positive_only and negative_only:
            raise ValueError("positive_only and negative_only cannot both be True; set one of them")
        exp = self._label(label).local_exp
        segments, image = self.segments, self.image
        mask = np.zeros(segments.shape, segments.dtype)
        temp = np.zeros(image.shape) if hide_rest else image.copy()
        if positive_only or negative_only:
            if positive_only:
                chosen = [j for j, w in exp if w > 0 and w > min_weight][:num_features]
            else:
                chosen = [j for j, w in exp if w < 0 and abs(w) > min_weight][:num_features]
            for j in chosen:
                temp[segments == j] = image[segments == j].copy()
                mask[segments == j] = 1
            return temp, mask
        for j, w in exp[:num_features]:
            if np.abs(w) < min_weight:
                continue
            channel = 0 if w < 0 else 1
            mask[segments == j] = -1 if w < 0 else 1
            temp[segments == j] = image[segments == j].copy()
            temp[segments == j, channel] = np.max(image)
        return temp, mask
