"""Panels the paper figures are made of, all drawn in the 224x224 model-input frame, so overlays always align.

Every panel axis is labelled ``"panel"`` (colour bars are not), which is how tests count a figure's panels.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from skimage.segmentation import mark_boundaries  # noqa: E402

from lime_ext import Explanation, LabelExplanation  # noqa: E402

CELL = 2.1  # inches per panel: a 7-column figure fits a two-column paper page at about 60%
TITLE = 8  # points
# The display names of the CAM methods (cam_ext.CAM_METHODS's keys) in figure titles and legends.
CAM_NAMES = {
    "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "layercam": "LayerCAM", "hirescam": "HiResCAM",
    "xgradcam": "XGrad-CAM", "ablationcam": "Ablation-CAM", "eigencam": "Eigen-CAM", "eigengradcam": "EigenGrad-CAM",
    "scorecam": "Score-CAM", "fullgrad": "FullGrad", "gradcamelementwise": "Grad-CAM (elementwise)",
}  # fmt: skip


def cam_name(method: str) -> str:
    """The display name of CAM ``method`` ('gradcam++' -> 'Grad-CAM++'); any other name as it is."""
    return CAM_NAMES.get(method, method)


def grid(rows: int, columns: int, cell: float = CELL) -> tuple[Figure, np.ndarray]:
    """A figure of rows x columns panels (axes off, labelled 'panel'); returns (figure, axes (rows, columns))."""
    fig, axes = plt.subplots(
        rows, columns, figsize=(cell * columns, cell * rows + 0.3), squeeze=False, constrained_layout=True
    )
    for axis in axes.ravel():
        axis.set_label("panel")
        axis.set_axis_off()
    return fig, axes


def blank(axis: Axes) -> None:
    """An unused cell of a grid (rows of different lengths): invisible, not counted as a panel."""
    axis.set_visible(False)
    axis.set_label("blank")


def image_panel(axis: Axes, image: np.ndarray, title: str, size: float | str = TITLE) -> None:
    """``image`` (H,W,3) with ``title`` at ``size`` (points or a matplotlib size name), as every panel."""
    axis.imshow(image)
    axis.set_title(title, fontsize=size)


def cam_panel(axis: Axes, cam: np.ndarray, title: str, raw: bool = False):
    """A class-activation map in [0,1] (jet). ``raw`` shows it at its own resolution, pixels as blocks."""
    shown = axis.imshow(cam, cmap="jet", vmin=0, vmax=1, interpolation="nearest" if raw else "antialiased")
    axis.set_title(title, fontsize=TITLE)
    return shown


def overlay_panel(
    axis: Axes, image: np.ndarray, cam: np.ndarray, title: str, alpha: float = 0.4, size: float | str = TITLE
):
    """The map (H,W) in [0,1] over the image it was computed on (same frame: no misalignment)."""
    axis.imshow(image)
    shown = axis.imshow(cam, cmap="jet", vmin=0, vmax=1, alpha=alpha)
    axis.set_title(title, fontsize=size)
    return shown


def signed_panel(
    axis: Axes,
    attribution: np.ndarray,
    title: str,
    limit: float | None = None,
    under: np.ndarray | None = None,
    size: float | str = TITLE,
):
    """A signed map on a symmetric blue-white-red scale; ``limit`` defaults to the 99th percentile of |map|
    (captum's outlier_perc=1), so a few extreme pixels do not wash out the rest. ``under``: an image (H,W,3)
    shown beneath the map, which is then drawn partly transparent."""
    if limit is None:
        limit = float(np.percentile(np.abs(attribution), 99)) or float(np.abs(attribution).max()) or 1.0
    if under is not None:
        axis.imshow(under)
    alpha = None if under is None else 0.7
    shown = axis.imshow(attribution, cmap="bwr", vmin=-limit, vmax=limit, alpha=alpha)
    axis.set_title(title, fontsize=size)
    return shown


def colorbar(fig: Figure, mappable, axes, label: str = "") -> None:
    bar = fig.colorbar(mappable, ax=axes, fraction=0.046, pad=0.02, shrink=0.9)
    bar.ax.tick_params(labelsize=6)
    if label:
        bar.set_label(label, fontsize=7)


def superpixels_image(explanation: Explanation, label: int, num_features: int) -> np.ndarray:
    """The image with the top ``num_features`` superpixels by |attribution| tinted green (+) / red (-), with
    their boundaries drawn in yellow: lime's ``get_image_and_mask(positive_only=False)`` + ``mark_boundaries``."""
    temp, mask = explanation.get_image_and_mask(label, positive_only=False, num_features=num_features)
    return mark_boundaries(temp / 255.0, mask)


def superpixels_panel(
    axis: Axes, explanation: Explanation, label: int, num_features: int, title: str, ids: bool = False,
    size: float | str = TITLE,
) -> None:  # fmt: skip
    """lime's display (:func:`superpixels_image`), with each shown superpixel's id when ``ids``."""
    image_panel(axis, superpixels_image(explanation, label, num_features), title, size)
    if ids:
        segment_ids(axis, explanation.segments, explanation.labels[label].ranking[:num_features])


def segment_ids(axis: Axes, segments: np.ndarray, which=None, colour: str = "blue") -> None:
    """Each superpixel's id at its centroid (all of them, or ``which``)."""
    count = int(segments.max()) + 1
    rows, cols = np.indices(segments.shape)
    sizes = np.bincount(segments.ravel(), minlength=count)
    ys = np.bincount(segments.ravel(), rows.ravel(), minlength=count) / np.maximum(sizes, 1)
    xs = np.bincount(segments.ravel(), cols.ravel(), minlength=count) / np.maximum(sizes, 1)
    for j in range(count) if which is None else which:
        axis.text(xs[j], ys[j], str(int(j)), color=colour, fontsize=5, ha="center", va="center")


def values_as_explanation(explanation: Explanation, label: int, values: np.ndarray) -> Explanation:
    """An Explanation of the same image and superpixels whose attributions are ``values`` (M,), ranked by
    |value|: any per-superpixel score (NormLIME's global weight, a product) drawn the way LIME's are."""
    values = np.asarray(values, dtype=np.float64)
    ranking = np.argsort(-np.abs(values), kind="stable")
    ones = np.ones_like(values)
    fit = LabelExplanation(label, values, values, ones, 0.0, float("nan"), float("nan"), ranking)
    return Explanation(explanation.image, explanation.segments, "none", {label: fit}, explanation.predictions)
