"""The output folder of a localisation run (Localisation.py), written from its
:class:`~cnnxai.groundtruth.report.LocalisationReport`: scores.csv, summary.csv/.md/.png, comparison.csv,
examples.png, manifest.json, the maps of a few examples in gallery/ and report.html, all or nothing."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from cnnxai.benchmark.gallery import DEFAULT_REPORT_IMAGES, save_gallery_maps
from cnnxai.figures.localisation import draw_examples
from cnnxai.groundtruth.benchmark import SCORE_COLUMNS
from cnnxai.groundtruth.report import LocalisationReport
from cnnxai.outputs import atomic_folder, atomic_savefig, atomic_write_text, write_json
from cnnxai.reporting.html import REPORT_NAME, write_report
from cnnxai.reporting.summary import markdown_table, summarise, write_summary
from cnnxai.synthetic.shapes import CLASSES


def example_indices(labels: np.ndarray, count: int) -> list[int]:
    """``count`` images for the figure: the first of each class in class order, then the second of each, ..."""
    by_class = [list(np.flatnonzero(labels == c)) for c in range(len(CLASSES))]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < count and depth < len(labels):
        for members in by_class:
            if depth < len(members) and len(chosen) < count:
                chosen.append(int(members[depth]))
        depth += 1
    return chosen


def localisation_table(report: LocalisationReport) -> list[dict]:
    """The summary's cells (mean, interval, n, best per method x metric) of the run's rows."""
    s = report.settings
    return summarise(report.result.rows, s.methods, report.metrics, report.directions, s.seed)


def localisation_markdown(report: LocalisationReport) -> str:
    """The summary table as Markdown, as printed and as in summary.md."""
    return markdown_table(localisation_table(report), report.settings.methods, report.metrics)


def scores_csv(report: LocalisationReport) -> str:
    """scores.csv: one row per image x method x metric, values at full precision."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SCORE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in report.result.rows:
        writer.writerow({**row, "value": repr(float(row["value"]))})
    return buffer.getvalue()


def example_title(report: LocalisationReport, i: int) -> str:
    """How example ``i`` is named in examples.png and report.html: its index in the test split, its class."""
    return f"#{int(report.dataset.indices[i])} {CLASSES[int(report.dataset.labels[i])]}"


def examples_figure(report: LocalisationReport):
    """Test images with their evidence outlined and every method's map (None when no example is asked for)."""
    dataset, result = report.dataset, report.result
    shown = example_indices(dataset.labels, min(report.settings.shown, len(dataset)))
    if not shown:
        return None
    methods, rows = report.settings.methods, result.rows
    pointing = {
        m: np.array([r["value"] for r in rows if r["method"] == m and r["metric"] == "PointingGame"])
        for m in methods
    }
    titles = [example_title(report, i) for i in shown]
    return draw_examples(dataset.images[shown], dataset.masks[shown], titles,
                         {m: result.maps[m][shown] for m in methods},
                         {m: pointing[m][shown] for m in methods})  # fmt: skip


def save_gallery(report: LocalisationReport, folder: Path, count: int) -> int:
    """report.html's gallery in ``folder/gallery/``: ``count`` examples (chosen as for examples.png), each image
    with its evidence mask and every method's map as scored (kept in memory by the run anyway). Returns the
    number saved."""
    dataset = report.dataset
    shown = example_indices(dataset.labels, min(count, len(dataset)))
    for order, i in enumerate(shown):
        maps = {m: report.result.maps[m][i] for m in report.settings.methods}
        save_gallery_maps(folder, f"case-{i}", order,
                          dataset.images[i], maps, example_title(report, i), dataset.masks[i])  # fmt: skip
    return len(shown)


def save_localisation(
    report: LocalisationReport, folder: str | Path, dpi: int = 150, options: Mapping[str, Any] | None = None,
    report_images: int = DEFAULT_REPORT_IMAGES,
) -> list[str]:  # fmt: skip
    """Write the run of ``report`` into ``folder`` (replaced as a whole, atomically): scores.csv,
    summary.csv/.md/.png, comparison.csv (and .png with several methods), examples.png, manifest.json (``options``: the command line's, recorded
    in it), the maps of ``report_images`` examples in gallery/, and report.html. Returns the names."""
    files = ["scores.csv", "summary.csv", "summary.md", "summary.png", "comparison.csv"]
    files += ["comparison.png"] if len(report.settings.methods) > 1 else []  # paired differences need two methods
    figure = examples_figure(report)
    with atomic_folder(Path(folder)) as out:
        atomic_write_text(out / "scores.csv", scores_csv(report))
        s = report.settings
        write_summary(out, report.result.rows, s.methods, report.metrics, report.note(), report.directions, s.seed,
                      s.baseline)  # fmt: skip
        if figure is not None:
            atomic_savefig(figure, out / "examples.png", dpi)
            plt.close(figure)
            files.append("examples.png")
        write_json(out / "manifest.json", report.manifest(options))
        files.append("manifest.json")
        if save_gallery(report, out, report_images):
            files.append("gallery/")
        write_report(out, "Localisation.py", report_images)
        files.append(REPORT_NAME)
    return files
