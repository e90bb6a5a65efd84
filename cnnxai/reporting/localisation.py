"""Localisation.py as one library call (:func:`run_localisation`), and the summary and report of a localisation
run's folder, over the rows of every shard present:
summary.csv/.md/.png, comparison.csv, examples.png and report.html, read from what the run left (scores.csv,
manifest.json and the examples' maps in gallery/, :class:`~cnnxai.groundtruth.report.LocalisationRun`), so that
``--summarize`` and the union of shards give what one run does."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from cnnxai.benchmark.gallery import DEFAULT_REPORT_IMAGES, GALLERY_FOLDER, read_gallery
from cnnxai.benchmark.store import clear_run, read_rows, result_folders, run_manifests, stored_identity
from cnnxai.distributed import worker_pool
from cnnxai.figures.localisation import draw_examples
from cnnxai.groundtruth.benchmark import SCORE_COLUMNS
from cnnxai.groundtruth.report import (
    LocalisationReport,
    LocalisationRequest,
    LocalisationSettings,
    load_localisation_model,
    localise_in_worker,
    run_localisation_benchmark,
    typed_row,
)
from cnnxai.metrics import localisation_scores, metric_settings
from cnnxai.outputs import atomic_savefig
from cnnxai.reporting.html import REPORT_NAME, write_report
from cnnxai.reporting.summary import markdown_table, summarise, write_summary

# What a localisation run writes into its folder (``overwrite`` deletes these, and the shards and gallery).
RUN_FILES = ("scores.csv", "manifest.json", "summary.csv", "summary.md", "summary.png", "comparison.csv",
             "comparison.png", "examples.png", REPORT_NAME)  # fmt: skip


def read_localisation(
    folder: str | Path, examples: int | None = None, baseline: str | None = None
) -> LocalisationReport:
    """The run in ``folder`` (whole or sharded) from its rows, manifests and gallery alone; ``examples`` and
    ``baseline`` as :class:`~cnnxai.groundtruth.report.LocalisationSettings`' (None: the examples the run was
    given, recorded in its manifest's options, and the default baseline)."""
    folder = Path(folder)
    identity = stored_identity(folder)
    manifest = json.loads(run_manifests(folder)[0].read_text())
    if examples is None:
        examples = manifest.get("options", {}).get("examples")
    settings = LocalisationSettings(**identity["settings"], examples=examples, baseline=baseline)
    model_info = manifest["model"]
    folders = result_folders(folder)
    rows = [typed_row(row) for place in folders for row in read_rows(place / "scores.csv", SCORE_COLUMNS)]
    shards = [place.name for place in folders if place != folder]
    return LocalisationReport(settings, model_info, rows, read_gallery(folders, settings.shown), shards)


def localisation_table(report: LocalisationReport) -> list[dict]:
    """The summary's cells (mean, interval, n, best per method x metric) of the run's rows."""
    s = report.settings
    return summarise(report.rows, s.methods, report.metrics, report.directions, s.seed)


def localisation_markdown(report: LocalisationReport) -> str:
    """The summary table as Markdown, as printed and as in summary.md."""
    return markdown_table(localisation_table(report), report.settings.methods, report.metrics)


def examples_figure(report: LocalisationReport):
    """The stored examples with their evidence outlined and every method's map (None when there is none). Each
    map's pointing game is scored again from the stored map and mask (the same map and function as its row)."""
    shown, s = report.examples, report.settings
    if not shown:
        return None
    pointing = metric_settings(["PointingGame"], {"PointingGame": {"tolerance": s.pointing_tolerance}})
    scores = {
        m: np.array([localisation_scores(e.maps[m], e.mask, pointing)["PointingGame"].value for e in shown])
        for m in s.methods
    }
    maps = {m: np.stack([e.maps[m] for e in shown]) for m in s.methods}
    return draw_examples(np.stack([e.frame for e in shown]), np.stack([e.mask for e in shown]),
                         [e.title for e in shown], maps, scores)  # fmt: skip


def save_localisation(
    report: LocalisationReport, folder: str | Path, dpi: int = 150, report_images: int = DEFAULT_REPORT_IMAGES
) -> list[str]:
    """Write the summary of ``report`` into ``folder``: summary.csv/.md/.png, comparison.csv (and .png with several
    methods), examples.png, and report.html (with ``report_images`` examples of gallery/). Returns the names of
    what the folder then holds of the run."""
    folder, s = Path(folder), report.settings
    write_summary(folder, report.rows, s.methods, report.metrics, report.note(), report.directions, s.seed,
                  s.baseline)  # fmt: skip
    figure = examples_figure(report)
    if figure is not None:
        atomic_savefig(figure, folder / "examples.png", dpi)
        plt.close(figure)
    write_report(folder, "Localisation.py", report_images)
    names = ("scores.csv", "summary.csv", "summary.md", "summary.png", "comparison.csv", "comparison.png",
             "examples.png", "manifest.json", GALLERY_FOLDER, "shards", REPORT_NAME)  # fmt: skip
    return [name + ("/" if (folder / name).is_dir() else "") for name in names if (folder / name).exists()]


def summarize_localisation(
    folder: str | Path, dpi: int = 150, report_images: int = DEFAULT_REPORT_IMAGES, examples: int | None = None,
    baseline: str | None = None,
) -> tuple[LocalisationReport, list[str]]:  # fmt: skip
    """Rebuild the summary, examples.png and report.html of the run in ``folder`` (whole or sharded) from what it
    left (:func:`read_localisation`, :func:`save_localisation`); returns the report read and the names written."""
    report = read_localisation(folder, examples, baseline)
    return report, save_localisation(report, folder, dpi, report_images)


@dataclass(frozen=True)
class LocalisationStatus:
    """How a localisation run ended: the ``report`` read back from its folder (over every shard present), the
    ``files`` the folder then holds of the run, the shard's ``status`` (as in its manifest) and the ``seconds``
    the whole call took."""

    report: LocalisationReport
    files: tuple[str, ...]
    status: dict[str, Any]
    seconds: float


def run_localisation(
    request: LocalisationRequest, on_model: Callable[[dict[str, Any]], None] | None = None
) -> LocalisationStatus:
    """Run the localisation benchmark ``request`` asks for (its shard; here or on Ray workers; an interrupted run
    resumes; :func:`~cnnxai.groundtruth.report.run_localisation_benchmark`), then write the summary, examples.png
    and report.html over every shard present (:func:`summarize_localisation`). ``on_model`` is called with the
    model's info (trained or read from the cache, its test quality) once it is loaded, before the run
    (Localisation.py prints it)."""
    started = time.perf_counter()
    settings, folder = request.settings, Path(request.output_dir)
    # With --ray the workers start now and load the model (from the cache filled here) on their own devices.
    with worker_pool(request.ray, settings.device, ("cnnxai.groundtruth.report",)) as pool:
        if request.overwrite:
            clear_run(folder, request.shard, RUN_FILES)
        model, info = load_localisation_model(settings if pool is None else replace(settings, device="cpu"))
        if on_model is not None:
            on_model(info)
        if pool is not None:
            pool.using(partial(localise_in_worker, settings, request.debug))
        status = run_localisation_benchmark(
            settings, model, info, folder, request.shard, request.record, not request.quiet, request.debug, pool,
            request.report_images,
        )  # fmt: skip
    report, files = summarize_localisation(folder, request.dpi, request.report_images, settings.examples,
                                           settings.baseline)  # fmt: skip
    return LocalisationStatus(report, tuple(files), status, time.perf_counter() - started)
