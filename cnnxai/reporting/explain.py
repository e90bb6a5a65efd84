"""Explain to a folder: the library entry point of GradLIME.py and CamLIME.py (:func:`explain_to_folder`).

Each image is explained by :class:`cnnxai.explain_run.ExplainRun` and written by
:func:`cnnxai.figures.save_explanation` into ``<output_dir>/<image>/`` (explanation.png, superpixels.csv,
attribution.npy, manifest.json), here or on Ray workers. An image of a folder that cannot be read or explained
is listed in ``<output_dir>/failures.csv`` and the run goes on; the returned :class:`ExplainStatus` says so.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from cnnxai.distributed import LocalPool, WorkFailed, worker_pool
from cnnxai.errors import UserInputError
from cnnxai.explain_run import ExplainedImage, ExplainRun, ExplainSettings, output_name, run_inputs
from cnnxai.figures.explanation import save_explanation
from cnnxai.images import load_image

FAILURES_FILE = "failures.csv"


@dataclass(frozen=True)
class ImageOutcome:
    """One image done: its ``source``, ``error`` (one line; '' when it was explained and written) and ``text``
    (what the explanation reports: the prediction, the top superpixels and where it was written; lines)."""

    source: str
    error: str
    text: str


@dataclass(frozen=True)
class ExplainStatus:
    """How a run ended: ``images`` asked for, ``failures`` ((source, one-line reason), sorted) and the
    ``failures_file`` listing them (None when none failed)."""

    images: int
    failures: tuple[tuple[str, str], ...] = ()
    failures_file: Path | None = None

    @property
    def exit_status(self) -> int:
        """0: every image explained; 1: some image of a folder failed."""
        return 1 if self.failures else 0


def save_explained(explained: ExplainedImage, settings: ExplainSettings) -> Path:
    """Write one image's explanation into ``<output_dir>/<name>/`` (replaced atomically); returns the folder."""
    out = Path(settings.output_dir) / explained.name
    selection = explained.selection
    save_explanation(
        explained.result, out, f"{settings.title}.py", explained.class_names, settings.title,
        settings.num_features, explained.compare, manifest=explained.manifest,
        outline=None if selection is None else (selection.box if selection.box is not None else selection.mask),
    )  # fmt: skip
    return out


def describe(explained: ExplainedImage, out: Path, settings: ExplainSettings) -> str:
    """What GradLIME.py prints for one image written to ``out``: the prediction (or the task's score), each
    fit's R² and top superpixels, the folder; with ``quiet`` one line. Ends with a newline."""
    result, selection, label = explained.result, explained.selection, explained.result.target
    name, probability = explained.class_names[label], float(result.probabilities[label])
    if settings.quiet:
        what = (
            f"{name} (class {label}) p={probability:.3f}"
            if selection is None
            else f"{name} score={probability:.3f}"
        )
        return f"{explained.source}: {what} -> {out}\n"
    if selection is None:
        lines = [f"{explained.source}: predicted {name} (class {label}), p = {probability:.3f}"]
    else:
        lines = [f"{explained.source}: explaining {name}, score = {probability:.3f}"]
    for tag, exp in ((settings.title, result.ours), ("LIME", result.lime)):
        top = exp.labels[label].local_exp[: settings.num_features]
        shown = ", ".join(f"{j}:{w:+.4f}" for j, w in top[:10])
        lines.append(f"  {tag} top superpixels (id:attribution, R² {exp.labels[label].score:.3f}): {shown}"
                     f"{' ...' if len(top) > 10 else ''}")  # fmt: skip
    lines.append(f"  wrote {out}/ (explanation.png, superpixels.csv, attribution.npy, manifest.json)")
    return "\n".join(lines) + "\n"


def explain_and_save(run: ExplainRun, image: np.ndarray, source: str, name: str) -> str:
    """Explain one image, write it, and return :func:`describe`'s text."""
    explained = run.explain(image, source, name)
    return describe(explained, save_explained(explained, run.settings), run.settings)


class FolderWork:
    """Explains the images of a folder one file at a time and writes their outputs: the work of a folder run,
    in this process or in a Ray worker. An item is a path; ``compute`` yields one :class:`ImageOutcome` (its
    text: anything the explanation printed, then :func:`describe`'s), so that the driver reports it."""

    def __init__(self, explain_run: ExplainRun, root: Path) -> None:
        self.explain_run, self.root = explain_run, root

    def load(self, path: Path) -> tuple[Path, np.ndarray | UserInputError]:
        try:
            return path, load_image(path)
        except UserInputError as error:
            return path, error

    def compute(self, loaded: tuple[Path, np.ndarray | UserInputError]) -> Iterator[ImageOutcome]:
        path, image = loaded
        printed = io.StringIO()
        try:
            if isinstance(image, UserInputError):
                raise image
            with redirect_stdout(printed):
                text = explain_and_save(self.explain_run, image, str(path), output_name(path, self.root))
        except UserInputError as error:
            message = str(error) if str(path) in str(error) else f"{path}: {error}"
            yield ImageOutcome(str(path), message, printed.getvalue())
        else:
            yield ImageOutcome(str(path), "", printed.getvalue() + text)


def folder_work_in_worker(settings: ExplainSettings, root: Path, device: str) -> FolderWork:
    """A :class:`FolderWork` built inside a Ray worker, its model loaded there on ``device``, quiet."""
    record = None if settings.record is None else {**settings.record, "device": device, "quiet": True}
    return FolderWork(ExplainRun(replace(settings, device=device, quiet=True, record=record)), root)


def explain_folder(
    settings: ExplainSettings,
    images: list[Path],
    root: Path,
    explain_run: ExplainRun,
    on_image: Callable[[ImageOutcome], None] | None = None,
) -> list[tuple[str, str]]:
    """Explain every image of a folder, here or (``settings.ray``) on Ray workers, calling ``on_image`` as each
    is done; returns the failures as (source, message)."""
    bar = None
    if not settings.quiet and len(images) > 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(images), desc="images", unit="image", dynamic_ncols=True)
    failures = []
    with worker_pool(settings.ray, settings.device, ("cnnxai.reporting.explain",)) as pool:
        workers = pool.using(partial(folder_work_in_worker, settings, root)) if pool else None
        for source, results in (workers or LocalPool(FolderWork(explain_run, root))).map_unordered(
            [(str(path), path, 1) for path in images]
        ):
            if isinstance(results, WorkFailed):
                results = [ImageOutcome(source, f"{source}: {results.reason}", "")]
            for outcome in results:
                if on_image is not None:
                    on_image(outcome)
                if outcome.error:
                    failures.append((outcome.source, outcome.error))
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    return failures


def explain_to_folder(
    settings: ExplainSettings, on_image: Callable[[ImageOutcome], None] | None = None
) -> ExplainStatus:
    """Explain ``settings.image_path`` (a file, a folder, or None: the built-in sample) and write each image's
    outputs into ``<output_dir>/<image>/``; ``on_image`` is called with each image's :class:`ImageOutcome` as it
    is done (GradLIME.py prints it). A single image that cannot be read or explained raises
    :class:`UserInputError` (nothing written); an image of a folder that cannot is listed in
    ``<output_dir>/failures.csv`` (path, error) and the run goes on. A bad setting raises before any work."""
    images, root, is_folder = run_inputs(settings.image_path)
    if settings.ray is not None and not is_folder:
        raise UserInputError("--ray runs a folder of images over workers; give --image-path a folder")
    # With Ray the workers load the model on their own devices; here it only checks the options.
    explain_run = ExplainRun(settings if settings.ray is None else replace(settings, device="cpu"))
    if not is_folder:
        path = images[0]
        if path is None:
            name, image = explain_run.sample()
            text = explain_and_save(explain_run, image, f"sample:{name}", name)
            source = f"sample:{name}"
        else:
            source = str(path)
            text = explain_and_save(explain_run, load_image(path), source, output_name(path, root))
        if on_image is not None:
            on_image(ImageOutcome(source, "", text))
        return ExplainStatus(1)
    failures_file = Path(settings.output_dir) / FAILURES_FILE
    if failures_file.exists():
        failures_file.unlink()  # a stale list from an earlier run would mislead
    failures = sorted(explain_folder(settings, images, root, explain_run, on_image))
    if not failures:
        return ExplainStatus(len(images))
    Path(settings.output_dir).mkdir(parents=True, exist_ok=True)
    with open(failures_file, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "error"])
        writer.writerows(failures)
    return ExplainStatus(len(images), tuple(failures), failures_file)
