"""The explanation figure: Original | CAM overlay | LIME | GradLIME/CamLIME, in the model-input frame."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage.segmentation import mark_boundaries  # noqa: E402

from lime_ext import Explanation  # noqa: E402


def superpixel_panel(explanation: Explanation, label: int, num_features: int) -> np.ndarray:
    """The image with the top ``num_features`` superpixels by |attribution| tinted green (+) / red (-), with
    their boundaries drawn in yellow: lime's ``get_image_and_mask(positive_only=False)`` + ``mark_boundaries``."""
    temp, mask = explanation.get_image_and_mask(label, positive_only=False, num_features=num_features)
    return mark_boundaries(temp / 255.0, mask)


def explanation_figure(
    path: str | Path,
    image: np.ndarray,
    cam_map: np.ndarray,
    lime: Explanation,
    ours: Explanation,
    label: int,
    class_name: str,
    probability: float,
    cam_title: str,
    ours_title: str,
    num_features: int,
    compare: dict[str, np.ndarray] | None = None,
) -> None:
    """Save the figure to ``path`` (PNG, or PDF by suffix): 1x4 panels, plus one per ``compare`` map (name ->
    signed (H,W) attribution, shown on a symmetric blue-white-red scale). ``cam_map`` is (H,W) in [0,1]."""
    compare = compare or {}
    panels = 4 + len(compare)
    columns = min(panels, 5)
    rows = -(-panels // columns)
    fig, grid = plt.subplots(
        rows, columns, figsize=(4 * columns, 4.6 * rows), constrained_layout=True, squeeze=False
    )
    axes = grid.ravel()
    axes[0].imshow(image)
    axes[0].set_title(f"Original: {class_name}\np = {probability:.3f} (class {label})")
    axes[1].imshow(image)
    overlay = axes[1].imshow(cam_map, cmap="jet", alpha=0.5, vmin=0, vmax=1)
    axes[1].set_title(cam_title)
    fig.colorbar(overlay, ax=axes[1], fraction=0.046, pad=0.02)
    lime_fit, ours_fit = lime.labels[label], ours.labels[label]
    axes[2].imshow(superpixel_panel(lime, label, num_features))
    axes[2].set_title(f"LIME, top {num_features}\nR² = {lime_fit.score:.3f}")
    axes[3].imshow(superpixel_panel(ours, label, num_features))
    axes[3].set_title(f"{ours_title}, top {num_features}\nR² = {ours_fit.score:.3f}")
    for axis, (name, attribution) in zip(axes[4:panels], compare.items(), strict=True):
        limit = float(np.abs(attribution).max()) or 1.0
        shown = axis.imshow(attribution, cmap="bwr", vmin=-limit, vmax=limit)
        axis.set_title(f"{name}\n(signed, symmetric scale)")
        fig.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
    for axis in axes:
        axis.set_axis_off()
    fig.savefig(path, dpi=150)
    plt.close(fig)
