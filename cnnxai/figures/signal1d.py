"""The MNIST-1D explanation figure: one row per class, one column per method, each panel the signal as a line
over a strip coloured by the method's attribution (scaled per panel, one diverging colour bar for all); and the
writer of a MNIST1D.py run (:func:`save_mnist1d`): the run's report holds the data, its files are written here."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cnnxai.outputs import atomic_savefig, write_json  # noqa: E402
from cnnxai.signal1d.registry import REGISTRY_1D  # noqa: E402

if TYPE_CHECKING:
    from cnnxai.signal1d.report import Mnist1DReport

CMAP = "RdBu_r"  # diverging, symmetric around 0: red = evidence for the class, blue = against
PANEL_WIDTH, PANEL_HEIGHT = 1.3, 0.62  # inches: 7 methods fit a page width at ~75%
FONT = 7  # points
STEM = "mnist1d_explanations"  # the files' name
DPI = 200
TITLES = {
    "lime": "LIME",
    "gradlime": "GradLIME",
    "gradcam": "Grad-CAM",
    "ig": "Integrated Gradients",
    "input_x_gradient": "Input x Gradient",
    "saliency": "Saliency",
    "rise": "RISE",
}


def scaled(attribution: np.ndarray, signed: bool = True) -> np.ndarray:
    """One colour scale for maps of any units. Signed maps: a / max|a| in [-1,1], so 0 (no evidence) stays at
    the colour map's centre. Unsigned maps: min-max to [0,1], which removes RISE's constant offset (its
    saliency is about E[P(c | x*M)] everywhere plus the evidence), as RISE's and Grad-CAM's own figures do.
    A constant map becomes zeros."""
    attribution = np.asarray(attribution, dtype=np.float64)
    if not signed:
        span = attribution.max() - attribution.min()
        return (attribution - attribution.min()) / span if span > 0 else np.zeros_like(attribution)
    top = np.abs(attribution).max()
    return attribution / top if top > 0 else attribution


def draw_mnist1d_figure(
    signals: np.ndarray,
    row_labels: Sequence[str],
    attributions: Mapping[str, np.ndarray],
    column_titles: Mapping[str, str] | None = None,
    signed: Mapping[str, bool] | None = None,
    note: str = "",
) -> Figure:
    """The figure of R signals (R,L) explained by each method of ``attributions`` (name -> (R,L) maps).

    Every panel axis is labelled ``"panel"`` (the colour bar is not), so tests can count panels. Row labels
    (e.g. class and probability) go left of each row, ``column_titles`` (name -> title) above each column;
    ``signed`` (name -> bool, default True) chooses the scaling of :func:`scaled`; ``note`` is a second line
    under the colour bar's label.
    """
    signals = np.asarray(signals, dtype=np.float64)
    rows, length = signals.shape
    names = list(attributions)
    titles = {name: name for name in names} | dict(column_titles or {})
    fig, axes = plt.subplots(
        rows,
        len(names),
        figsize=(PANEL_WIDTH * len(names) + 0.9, PANEL_HEIGHT * rows + 0.9),
        squeeze=False,
        sharex=True,
        constrained_layout=True,
    )
    positions = np.arange(length)
    image = None
    for row in range(rows):
        signal = signals[row]
        margin = 0.12 * (signal.max() - signal.min() + 1e-6)
        low, high = signal.min() - margin, signal.max() + margin
        for column, name in enumerate(names):
            axis = axes[row, column]
            axis.set_label("panel")
            values = scaled(np.asarray(attributions[name])[row], (signed or {}).get(name, True))
            # The attribution as a strip of coloured columns behind the signal: position t's colour is a(t).
            image = axis.imshow(
                values[None],
                cmap=CMAP,
                vmin=-1,
                vmax=1,
                aspect="auto",
                interpolation="nearest",
                extent=(-0.5, length - 0.5, low, high),
            )
            axis.plot(positions, signal, color="black", linewidth=1.0)
            axis.set_xlim(-0.5, length - 0.5)
            axis.set_ylim(low, high)
            axis.set_yticks([])
            axis.tick_params(axis="x", labelsize=FONT - 1, length=2, pad=1)
            if row == 0:
                axis.set_title(titles[name], fontsize=FONT + 1)
            if column == 0:
                axis.set_ylabel(row_labels[row], fontsize=FONT, rotation=0, ha="right", va="center")
        axes[row, 0].set_xticks([0, 10, 20, 30, length - 1])
    for axis in axes[-1]:
        axis.set_xlabel("position t", fontsize=FONT)
    bar = fig.colorbar(image, ax=axes, location="bottom", shrink=0.45, aspect=40, pad=0.01)
    label = "attribution per panel: signed methods a / max|a| (red: for the class, blue: against); unsigned: min-max"
    bar.set_label(label + (f"\n{note}" if note else ""), fontsize=FONT)
    bar.ax.tick_params(labelsize=FONT - 1)
    return fig


def mnist1d_figure(report: Mnist1DReport) -> Figure:
    """One row per signal of ``report``, one column per method, each column titled with its mean deletion AUC."""
    mean = report.mean_deletion
    rows = [
        f"digit {t}\n#{i}, p={p:.2f}"
        for t, i, p in zip(report.targets, report.indices, report.probabilities, strict=True)
    ]
    titles = {name: f"{TITLES.get(name, name)}\ndel. AUC {mean[name]:.2f}" for name in report.maps}
    signed = {name: REGISTRY_1D[name].signed for name in report.maps}
    note = (
        f"del. AUC: deletion AUC (P(class) as positions are zeroed in attribution order), mean of the "
        f"{len(report.indices)} rows, lower is better; random order: {mean['random']:.2f}"
    )
    return draw_mnist1d_figure(report.signals, rows, report.maps, titles, signed, note)


def save_mnist1d(report: Mnist1DReport, folder: str | Path, dpi: int = DPI, pdf: bool = False) -> list[Path]:
    """Write ``report``'s mnist1d_explanations.png (and .pdf with ``pdf``) and its .json manifest into ``folder``
    (made if missing; other files in it are left alone), each atomically. Returns the paths written, the
    manifest last."""
    started = time.perf_counter()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = [folder / f"{STEM}{suffix}" for suffix in ((".png", ".pdf") if pdf else (".png",))]
    fig = mnist1d_figure(report)
    try:
        for path in figures:
            atomic_savefig(fig, path, dpi)
    finally:
        plt.close(fig)
    seconds = report.run_seconds + time.perf_counter() - started
    output = {"output_dir": str(folder), "dpi": dpi, "pdf": pdf}
    manifest_path = folder / f"{STEM}.json"
    write_json(manifest_path, report.manifest(output, [p.name for p in figures], seconds))
    return [*figures, manifest_path]
