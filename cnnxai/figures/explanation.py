"""The explanation figure (Original | CAM overlay | LIME | GradLIME/CamLIME, in the model-input frame), and the
writer of one image's GradLIME / CamLIME result (:func:`save_explanation`): the result object holds the data, its
files are written here, in the figures layer."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cnnxai.figures.panels import cam_name, image_panel, overlay_panel, signed_panel, superpixels_panel  # noqa: E402
from cnnxai.outputs import atomic_folder, atomic_write_text, build_manifest, write_json  # noqa: E402
from lime_ext import Explanation  # noqa: E402

if TYPE_CHECKING:
    from cnnxai.explainers import CamLimeResult


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
    # this figure's titles are matplotlib's default size, not the paper grids' (panels.TITLE)
    size = plt.rcParams["axes.titlesize"]
    score = f"p = {probability:.3f} (class {label})" if outline is None else f"score = {probability:.3f}"
    image_panel(axes[0], image, f"Original: {class_name}\n{score}", size)
    overlay = overlay_panel(axes[1], image, cam_map, cam_title, alpha=0.5, size=size)
    fig.colorbar(overlay, ax=axes[1], fraction=0.046, pad=0.02)
    for axis, explanation, title in ((axes[2], lime, "LIME"), (axes[3], ours, ours_title)):
        fit = explanation.labels[label]
        superpixels_panel(axis, explanation, label, num_features, f"{title}, top {num_features}\nR² = {fit.score:.3f}",
                          size=size)  # fmt: skip
    for axis, (name, attribution) in zip(axes[4:panels], compare.items(), strict=True):
        limit = float(np.abs(attribution).max()) or 1.0
        shown = signed_panel(axis, attribution, f"{name}\n(signed, symmetric scale)", limit, size=size)
        fig.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
    for axis in axes:
        axis.set_axis_off()
    if outline is not None:
        for axis in axes[:panels]:
            draw_outline(axis, outline)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def save_explanation(
    result: CamLimeResult,
    folder: str | Path,
    tool: str = "cnnxai",
    class_names: Sequence[str] | None = None,
    title: str = "GradLIME",
    num_features: int = 20,
    compare: Mapping[str, np.ndarray] | None = None,
    manifest: Mapping[str, Any] | None = None,
    outline: tuple[float, float, float, float] | np.ndarray | None = None,
) -> list[str]:
    """Write the outputs of one image's ``result`` into ``folder`` (replaced as a whole, atomically):
    explanation.png (Original | CAM | LIME | ``title``, plus one panel per ``compare`` map), superpixels.csv,
    attribution.npy (and attribution_class<k>.npy for further labels), ``<name>.npy`` per ``compare`` map,
    manifest.json (``manifest`` sections added to the result's own); ``outline`` (a box or a region mask) is drawn
    on the figure's panels. Returns the file names."""
    label = result.target
    names = class_names or [str(k) for k in range(len(result.probabilities))]
    cam = result.cam_settings
    # the CAM panel names Grad-CAM by its display name and any other method by its key, as it always has
    method = cam_name(cam.method) if cam.method == "gradcam" else cam.method
    cam_title = f"{method} ({', '.join(cam.layers)})"
    with atomic_folder(Path(folder)) as out:
        files = ["explanation.png"]
        explanation_figure(
            out / "explanation.png", result.ours.image, result.cam_maps[label], result.lime, result.ours, label,
            names[label], float(result.probabilities[label]), cam_title, title, num_features, dict(compare or {}),
            outline,
        )  # fmt: skip
        rows = result.superpixel_rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(out / "superpixels.csv", buffer.getvalue())
        files.append("superpixels.csv")
        arrays = {"attribution.npy": result.ours.attribution_map(label)}
        arrays.update({f"attribution_class{k}.npy": result.ours.attribution_map(k) for k in result.labels[1:]})
        arrays.update({f"{name}.npy": attribution for name, attribution in (compare or {}).items()})
        for name, array in arrays.items():
            np.save(out / name, array)
            files.append(name)
        files.append("manifest.json")
        sections = {**result.manifest_sections(class_names), **dict(manifest or {}), "files": files}
        write_json(out / "manifest.json", build_manifest(tool, **sections))
    return files
