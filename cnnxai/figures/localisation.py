"""The example figure of the localisation benchmark: test images with their evidence outlined and every
method's map, the evidence outlined on each and the map's maximum marked."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PANELS_PER_ROW = 10


def draw_examples(
    images: np.ndarray,
    masks: np.ndarray,
    titles: Sequence[str],
    maps: dict[str, np.ndarray],
    pointing: dict[str, np.ndarray],
):
    """``images`` (E,H,W,3) uint8, ``masks`` (E,H,W), ``titles`` (E,), ``maps[method]`` (E,H,W) as scored,
    ``pointing[method]`` (E,) the pointing-game score of each map. One block of panels per image: the image,
    then each method's map scaled to its own maximum (blank when undefined), in rows of ``PANELS_PER_ROW``."""
    methods = list(maps)
    panels = 1 + len(methods)
    rows_per_example = -(-panels // PANELS_PER_ROW)
    columns = min(panels, PANELS_PER_ROW)
    rows = rows_per_example * len(images)
    fig, axes = plt.subplots(rows, columns, figsize=(1.25 * columns, 1.6 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.set_axis_off()
    for e in range(len(images)):
        slots = axes[e * rows_per_example : (e + 1) * rows_per_example].ravel()
        slots[0].imshow(images[e])
        slots[0].contour(masks[e], levels=[0.5], colors="white", linewidths=0.7)
        slots[0].set_title(titles[e], fontsize=7, fontweight="bold")
        for axis, method in zip(slots[1:], methods, strict=False):
            values = maps[method][e]
            if np.all(np.isfinite(values)):
                top = float(values.max())
                axis.imshow(values / top if top > 0 else values, cmap="magma", vmin=0, vmax=1)
                y, x = np.unravel_index(int(np.argmax(values)), values.shape)
                axis.plot(x, y, marker="+", color="cyan", markersize=6, mew=1.2)
            axis.contour(masks[e], levels=[0.5], colors="white", linewidths=0.5)
            axis.set_title(f"{method}\nPG {pointing[method][e]:.2f}", fontsize=6)
    fig.suptitle(
        "white: the evidence (object mask); +: the map's maximum; PG: pointing game; maps scaled to their maximum",
        fontsize=7,
        y=0.995,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985), h_pad=0.6, w_pad=0.2)
    return fig
