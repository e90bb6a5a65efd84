"""The application figures of the CamLIME paper (a detection, a segmentation, a face, each with its explanation):
what is explained drawn on the frame, the CAM prior, LIME and CamLIME on the same samples, and other explainers of
the same target (RISE on a detection target is D-RISE)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from cnnxai.figures.catalog import explainer_name, figure
from cnnxai.figures.explanation import draw_outline
from cnnxai.figures.panels import (
    blank,
    cam_name,
    colorbar,
    grid,
    image_panel,
    overlay_panel,
    signed_panel,
)
from cnnxai.tasks.explain import TaskExplanation

TASK_TITLES = {"detection": "Detection", "segmentation": "Segmentation", "face": "Face detection"}
DESCRIPTIONS = {
    "detection": "a detected box: CamLIME of its D-RISE score beside its Grad-CAM prior, LIME and D-RISE "
    "(CamLIME_Obd.py; --model, --box-index, --box, --class)",
    "segmentation": "a class region of a segmenter: CamLIME of its mean probability beside the prior, LIME and "
    "RISE (CamLIME_Seg.py; --model, --class)",
    "face": "a face of the MTCNN detector: CamLIME of its confidence beside the P-Net Grad-CAM prior, LIME and "
    "D-RISE (CamLIME_Face.py; --face-index)",
}
APPLICATION_OTHERS = ("rise",)  # drawn beside CamLIME by default: RISE of a box target is D-RISE


def application_figure(
    explained: TaskExplanation,
    task: str,
    title: str,
    others: Mapping[str, np.ndarray],
) -> Figure:
    """Original (with the box or region) | CAM prior | LIME | ``title`` (CamLIME / GradLIME) | one panel per map of
    ``others`` (name -> signed (H,W)); LIME's and ours are their signed superpixel attributions (fitted on the same
    samples); the outline is drawn on every panel."""
    result, selection = explained.result, explained.selection
    frame = result.ours.image
    outline = selection.box if selection.box is not None else selection.mask
    names = list(others)
    panels = 4 + len(names)
    columns = min(panels, 5)
    fig, axes = grid(-(-panels // columns), columns, cell=2.4)
    cells = axes.ravel()
    image_panel(cells[0], frame, f"{TASK_TITLES[task]}: {selection.name}\nscore = {selection.score:.3f}")
    cam = result.cam_settings
    shown = overlay_panel(
        cells[1], frame, result.cam_maps[0], f"{cam_name(cam.method)} prior"
    )
    colorbar(fig, shown, cells[1])
    for axis, (name, explanation) in zip(
        cells[2:4], (("LIME", result.lime), (title, result.ours)), strict=True
    ):
        label = f"{name} (R² {explanation.labels[0].score:.3f})\nsigned, per superpixel"
        colorbar(fig, signed_panel(axis, explanation.attribution_map(0), label, under=frame), axis)
    for axis, name in zip(cells[4:panels], names, strict=True):
        label = "D-RISE" if name == "rise" and task != "segmentation" else explainer_name(name)
        colorbar(fig, signed_panel(axis, others[name], label, under=frame), axis)
    for axis in cells[panels:]:
        blank(axis)
    for axis in cells[:panels]:
        draw_outline(axis, outline)
    return fig


for _task, _description in DESCRIPTIONS.items():  # on the one registry of figures, beside the classifier ones
    figure(_task, _description, "explainers", APPLICATION_OTHERS, task=_task)(application_figure)
