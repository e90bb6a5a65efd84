"""The summary and report of a benchmark's output folder (MyFaithfulness.py, MyComplexity.py): summary.*,
comparison.csv, curves_mean.csv / curves.png and report.html, over the rows of every shard present."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cnnxai.benchmark.gallery import DEFAULT_REPORT_IMAGES
from cnnxai.benchmark.runner import CURVE_METRICS, BenchmarkRun
from cnnxai.benchmark.store import load_rows, result_folders, stored_identity
from cnnxai.reporting.html import write_report
from cnnxai.reporting.summary import write_curves, write_summary


def write_run_summary(
    folder: Path, methods: Sequence[str], metrics: Sequence[str], planned: int, tool: str,
    report_images: int = DEFAULT_REPORT_IMAGES, seed: int = 0, baseline: str | None = None,
) -> Path:  # fmt: skip
    """Summarise every scores.csv of ``folder`` (itself and its shards) into ``folder``, then write its
    report.html (with ``report_images`` gallery images); returns summary.md. ``seed``, ``baseline``: of the
    statistics (:func:`cnnxai.reporting.summary.write_summary`)."""
    folders = result_folders(folder)
    scores, curves = load_rows(folders)
    images = len({row["image"] for row in scores})
    shards = [p.name for p in folders if p != folder]
    note = (
        f"{tool}: {images} of {planned} images scored"
        + (f" (shards present: {', '.join(shards)})" if shards else "")
        + f"; {len(methods)} explainers, {len(metrics)} metrics."
    )
    write_summary(folder, scores, methods, metrics, note, seed=seed, baseline=baseline)
    if any(m in CURVE_METRICS for m in metrics):
        write_curves(folder, curves, methods)
    write_report(folder, f"{tool}.py", report_images)
    return folder / "summary.md"


def summarize_run(run: BenchmarkRun, baseline: str | None = None) -> Path:
    """The summary and report of ``run``'s folder after :meth:`BenchmarkRun.run`, over the rows of all shards
    present, compared with ``baseline`` (None: lime, or the first method); returns summary.md."""
    s = run.settings
    return write_run_summary(
        run.folder, s.methods, s.metrics, len(run.images), s.tool, run.report_images, s.seed, baseline
    )


def summarize_folder(
    folder: Path, report_images: int = DEFAULT_REPORT_IMAGES, baseline: str | None = None
) -> Path:
    """Rebuild the summary and report of the run in ``folder`` (whole or sharded) from its rows and manifests
    alone (the statistics with the run's seed, against ``baseline``)."""
    identity = stored_identity(folder)
    settings = identity["settings"]
    return write_run_summary(
        folder, settings["methods"], settings["metrics"], identity["data"]["images"], settings["tool"],
        report_images, settings["seed"], baseline,
    )  # fmt: skip
