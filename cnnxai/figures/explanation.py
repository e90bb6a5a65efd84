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


def draw_outline(axis, outline: tuple[float, float, float, float] | np.ndarray) -> None:
    """Draw what is explained on ``axis``: a box (x1,y1,x2,y2) as a rectangle, a mask (H,W) as its contour."""
    from matplotlib.patches import Rectangle

    if isinstance(outline, np.ndarray) and outline.ndim == 2:
        axis.contour(outline.astype(float), levels=[0.5], colors="cyan", linewidths=1.2)
        return
    x1, y1, x2, y2 = (float(v) for v in outline)
    axis.add_patch(
        Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor="cyan", linewidth=1.5)
    )


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
    outline: tuple[float, float, float, float] | np.ndarray | None = None,
) -> None:
    """Save the figure to ``path`` (PNG, or PDF by suffix): 1x4 panels, plus one per ``compare`` map (name ->
    signed (H,W) attribution, shown on a symmetric blue-white-red scale). ``cam_map`` is (H,W) in [0,1].
    ``outline``: what a task explains, drawn on every panel: a box (x1,y1,x2,y2) or a region mask (H,W) bool;
    the first title then gives the target's score (``probability``) rather than a class probability."""
    compare = compare or {}
    panels = 4 + len(compare)
    columns = min(panels, 5)
    rows = -(-panels // columns)
    fig, grid = plt.subplots(
        rows, columns, figsize=(4 * columns, 4.6 * rows), constrained_layout=True, squeeze=False
    )
    axes = grid.ravel()
    axes[0].imshow(image)
    if outline is None:
        axes[0].set_title(f"Original: {class_name}\np = {probability:.3f} (class {label})")
    else:
        axes[0].set_title(f"Original: {class_name}\nscore = {probability:.3f}")
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
    if outline is not None:
        for axis in axes[:panels]:
            draw_outline(axis, outline)
    fig.savefig(path, dpi=150)
    plt.close(fig)
