"""The result of GradLIME / CamLIME on one image: data only (the fits, priors, CAMs and timings), with the rows
and manifest sections it is saved as; its writer (explanation.png, superpixels.csv, attribution.npy, manifest.json,
all or nothing) is :func:`cnnxai.figures.explanation.save_explanation`, in the figures layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cam_ext import CamSettings, LayerCams
from lime_ext import Explanation, LimeSettings, Neighbourhood


@dataclass(frozen=True)
class CamLimeResult:
    """GradLIME / CamLIME and plain LIME fitted on the same neighbourhood (a paired comparison).

    ``labels`` are the explained classes, the first being the main one (``target``); ``priors[label]`` is that
    class's prior (M,); ``cam_maps[label]`` its fused CAM (H,W) in [0,1] on the image frame; ``probabilities``
    (C,) the classifier's output on the image; ``timings`` the seconds of each step of this call; ``lime``,
    ``cam`` and ``cam_mode`` the settings it was made with.
    """

    labels: list[int]
    ours: Explanation
    lime: Explanation
    cams: LayerCams
    priors: dict[int, np.ndarray]
    cam_maps: dict[int, np.ndarray]
    probabilities: np.ndarray
    neighbourhood: Neighbourhood
    timings: dict[str, float]
    lime_settings: LimeSettings
    cam_settings: CamSettings
    cam_mode: str

    @property
    def target(self) -> int:
        return self.labels[0]

    @property
    def prior(self) -> np.ndarray:
        return self.priors[self.target]

    def superpixel_rows(self) -> list[dict]:
        """One row per (label, superpixel): area, prior, weight w, attribution b and rank (1 = largest |b|), with
        plain LIME's weight and rank on the same perturbations beside them, and the samples both fits used;
        floats at full precision."""
        segments = self.ours.segments
        areas = np.bincount(segments.ravel(), minlength=self.ours.num_segments)
        samples = self.ours.info["samples"]["samples"]
        rows = []
        for label in self.labels:
            ours, lime = self.ours.labels[label], self.lime.labels[label]
            ours_rank = {int(j): r + 1 for r, j in enumerate(ours.ranking)}
            lime_rank = {int(j): r + 1 for r, j in enumerate(lime.ranking)}
            for j in range(self.ours.num_segments):
                rows.append({
                    "label": label, "segment_id": j, "area_px": int(areas[j]),
                    "prior": repr(float(ours.prior[j])), "weight": repr(float(ours.weights[j])),
                    "attribution": repr(float(ours.attributions[j])), "rank": ours_rank.get(j, ""),
                    "lime_weight": repr(float(lime.weights[j])), "lime_rank": lime_rank.get(j, ""),
                    "samples": samples,
                })  # fmt: skip
        return rows

    def manifest_sections(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """What the result itself says in a manifest: settings, prediction, fits, sizes and timings."""
        label = self.target
        predicted = {"class": label, "probability": float(self.probabilities[label])}
        if class_names is not None:
            predicted["name"] = class_names[label]
        return {
            "lime": asdict(self.lime_settings),
            "cam": {**asdict(self.cam_settings), "mode": self.cam_mode},
            "predicted": predicted,
            "explained_labels": self.labels,
            "num_segments": self.neighbourhood.num_segments,
            "samples": self.ours.info["samples"],
            "batch_size": self.neighbourhood.info["batch_size"],
            "fit": {
                str(k): {
                    "r2": self.ours.labels[k].score,
                    "intercept": self.ours.labels[k].intercept,
                    "local_pred": self.ours.labels[k].local_pred,
                    "lime_r2": self.lime.labels[k].score,
                }
                for k in self.labels
            },  # fmt: skip
            "timings": dict(self.timings),
        }
