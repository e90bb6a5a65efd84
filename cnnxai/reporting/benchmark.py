"""A benchmark as one library call (MyFaithfulness.py, MyComplexity.py: :func:`run_benchmark`), and the summary and
report of its output folder: summary.*, comparison.csv, curves_mean.csv / curves.png and report.html, over the rows
of every shard present."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cnnxai.benchmark.gallery import DEFAULT_REPORT_IMAGES
from cnnxai.benchmark.request import BenchmarkRequest, RunStatus, benchmark_images, benchmark_run
from cnnxai.benchmark.runner import CURVE_METRICS, BenchmarkRun
from cnnxai.benchmark.store import clear_run, load_rows, result_folders, stored_identity
from cnnxai.devices import resolve_device
from cnnxai.distributed import worker_pool
from cnnxai.reporting.html import REPORT_NAME, write_report
from cnnxai.reporting.summary import write_curves, write_summary

# What a benchmark run writes into its folder (``overwrite`` deletes these, and the shards and gallery).
RUN_FILES = ("scores.csv", "curves.csv", "manifest.json", "summary.csv", "summary.md", "summary.png",
             "comparison.csv", "comparison.png", "curves_mean.csv", "curves.png", REPORT_NAME)  # fmt: skip


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


def run_benchmark(request: BenchmarkRequest) -> RunStatus:
    """Run the benchmark ``request`` asks for (its shard; here or on Ray workers; an interrupted run resumes),
    then write the summary, comparison and report.html over every shard present (:func:`summarize_run`); returns
    how it ended (the summary is ``folder/summary.md``). A bad request raises a one-line
    :class:`~cnnxai.errors.UserInputError` before any work."""
    folder = request.folder
    dataset, images = benchmark_images(request)
    # With Ray the workers start now (importing while the model loads here) and load it on their own devices;
    # here it only names the run and its layers.
    with worker_pool(request.ray, folder.device, ("cnnxai.benchmark.runner",)) as pool:
        device = resolve_device("cpu" if request.ray else folder.device)
        if folder.overwrite:
            clear_run(folder.folder, folder.shard, RUN_FILES)
        benchmark = benchmark_run(request, dataset, images, device, pool)
        status = benchmark.run()
        summarize_run(benchmark, request.baseline)
    return RunStatus(benchmark.folder, benchmark.rows_folder, status)
