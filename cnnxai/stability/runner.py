"""A stability run: every image x method x budget N x seed, one row each in rows.csv, resumable and shardable.

Per image: one :class:`~cnnxai.session.ImageSession` across all methods, seeds and budgets, holding one segmentation
(the run's segmenter and seed) used by every explanation (the LIME neighbourhood of a seed is sampled once; per the
explainers' contract, a smaller N is a prefix of a larger one's samples) and the prediction (the target), and one
:class:`~cnnxai.stability.curves.SuperpixelCurves` that caches every perturbed image of the deletion and insertion
curves. The reference (plain ``lime`` at ``reference_samples`` with a seed that is none of the test seeds) is a
unit of its own, done first; a resumed run reads its attributions back from rows.csv.

The unit of work is one image with one method (all its budgets and seeds); an image's pending units are computed
together by an :class:`ImageStability`, in this process or in a Ray worker (``--ray``), and its rows go to disk
through the benchmark's :class:`~cnnxai.benchmark.store.ResultStore`, so a killed run resumes to the same rows, and
shards split images exactly as MyFaithfulness.py's.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnxai.benchmark.data import BenchmarkImage, make_groups, shard_groups
from cnnxai.benchmark.runner import ImageFolderRun, explanation_failed
from cnnxai.benchmark.store import ResultStore, read_rows
from cnnxai.devices import resolve_device
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY, explain
from cnnxai.outputs import build_manifest
from cnnxai.preprocess import FRAME_SIZE, RESIZE_SIZE, to_model_frame
from cnnxai.session import ImageSession
from cnnxai.stability.adapter import read_explanation
from cnnxai.stability.curves import SuperpixelCurves
from cnnxai.stability.measures import kendall, top_k_jaccard, top_k_undefined
from cnnxai.stability.rows import REFERENCE, ROW_COLUMNS, ROWS_FILE, UNREADABLE
from cnnxai.stability.specs import ResolvedMethod
from lime_ext import module_device, segment_image


def reference_seed(seed: int, count: int) -> int:
    """The reference's seed: seed + 1000, or past the test seeds seed..seed+count-1 when there are more."""
    return int(seed) + max(1000, int(count))


@dataclass(frozen=True)
class StabilitySettings:
    """Everything that decides the rows of a run (a resumed run or another shard must have the same).

    ``methods`` resolved (options and budgets; plain ``lime`` at ``match_samples`` among them, the baseline of
    forwards_to_match); ``seeds`` the test seeds; ``reference_options`` plain lime's options but ``num_samples``;
    ``segmenter`` and ``hide_color`` the one segmentation of each image and the colour of the curves' hidden
    superpixels; ``preprocess``, ``resize`` and ``frame_size`` how an image becomes the model-input frame
    (:func:`cnnxai.preprocess.to_model_frame`; the side the model takes).
    """

    methods: tuple[ResolvedMethod, ...]
    seeds: tuple[int, ...]
    grid: tuple[int, ...]
    top_k: int
    reference_samples: int
    reference_options: dict[str, Any]
    match_samples: int
    curve_steps: int
    segmenter: str
    hide_color: Any
    seed: int = 0
    preprocess: str = "crop"
    frame_size: int = FRAME_SIZE
    resize: int = RESIZE_SIZE
    tool: str = "MyStability"

    @property
    def reference_seed(self) -> int:
        return reference_seed(self.seed, len(self.seeds))

    def rows_per_unit(self, method: ResolvedMethod) -> int:
        return len(method.budgets) * len(self.seeds)


def _text(value: float) -> str:
    return repr(float(value))


def _attributions(row: dict) -> np.ndarray | None:
    """A row's attributions as stored (JSON of float reprs: read back bit for bit); None when it failed."""
    return np.array(json.loads(row["attributions"]), dtype=np.float64) if row["attributions"] else None


class StabilityRun(ImageFolderRun):
    """One run (or one shard of it) into ``folder``; the arguments as
    :class:`~cnnxai.benchmark.runner.ImageFolderRun`'s, with ``settings`` a :class:`StabilitySettings` and ``pool``
    a :class:`~cnnxai.distributed.WorkerPool` of :func:`stability_in_worker` (None: compute here)."""

    def __init__(self, settings: StabilitySettings, *args: Any, **kwargs: Any) -> None:
        super().__init__(settings, *args, **kwargs)
        self.mine = shard_groups(make_groups(self.images, 1, settings.seed), self.shard)
        self.store = ResultStore(
            self.rows_folder, rows=(ROWS_FILE, ROW_COLUMNS), curves=None,
            key=lambda row: (row["image"], row["budget"], row["seed"]),
        )  # fmt: skip
        self.curve_forwards = 0

    bar_unit = "explanation"

    def _manifest(self, extra: dict) -> dict:
        settings = self.settings
        return build_manifest(
            "MyStability.py", ("tqdm",), identity=self.identity(), seed=settings.seed, seeds=list(settings.seeds),
            grid=list(settings.grid),
            reference={"method": "lime", "num_samples": settings.reference_samples, "seed": settings.reference_seed,
                       "options": settings.reference_options},
            methods={m.label: {"name": m.name, "description": REGISTRY[m.name].description,
                               "budgets": list(m.budgets), "options": m.options} for m in settings.methods},
            model={**self.model_info, "device": self.device_name}, batch_size=self.batch_size, **extra,
        )  # fmt: skip

    # -- the run's units: (image group, method), one image with all its budgets and seeds -------------------------

    def units(self) -> dict[tuple[int, str], int]:
        """Rows expected of each unit (image group, method) of this shard; the reference first per image."""
        expected = {}
        for group in self.mine:
            expected[(group.index, REFERENCE)] = 1
            for method in self.settings.methods:
                expected[(group.index, method.label)] = self.settings.rows_per_unit(method)
        return expected

    def _work(self, expected: dict, done: set) -> list[tuple[int, tuple, int]]:
        """One item per image with pending units: (index, image, pending labels in the run's order, the stored
        reference's attributions when the reference is done, else None), sized by its explanations."""
        work = []
        for group in self.mine:
            pending = [unit[1] for unit in expected if unit[0] == group.index and unit not in done]
            if pending:
                image = group.images[0]
                reference = None if REFERENCE in pending else self._stored_reference(image.key)
                size = sum(expected[(group.index, label)] for label in pending)
                work.append((group.index, (group.index, image, pending, reference), size))
        return work

    def _worker(self) -> ImageStability:
        return ImageStability(self.settings, self.model, self.batch_size, self.debug)

    def _take(self, index: int, finished: tuple[str, list[dict], int], done: set, bar: Any) -> None:
        label, rows, forwards = finished
        self.store.append(rows)
        self.curve_forwards += forwards
        done.add((index, label))
        if bar is not None:
            bar.update(len(rows))

    def _given_up(self, index: int, reason: str, expected: dict, done: set) -> list[tuple[str, list[dict], int]]:
        """NaN rows for each pending unit of an image whose worker kept dying on it."""
        image = next(group.images[0] for group in self.mine if group.index == index)
        pending = [unit[1] for unit in expected if unit[0] == index and unit not in done]
        print(f"warning: {image.key}: {reason}", file=sys.stderr)
        return [(label, undefined_rows(self.settings, index, image, label, reason), 0) for label in pending]

    def _totals(self) -> dict:
        return {"curve_forwards": self.curve_forwards}

    def _stored_reference(self, key: str) -> np.ndarray | None:
        """The reference attributions of image ``key`` as rows.csv holds them (so a resumed run reads the same)."""
        for row in read_rows(self.store.scores_path, ROW_COLUMNS):
            if row["image"] == key and row["method"] == REFERENCE:
                return _attributions(row)
        return None


def _common(index: int, image: BenchmarkImage, label: str, budget, seed: int) -> dict:
    return {
        "image": image.key, "group": index, "true_class": "" if image.true_class is None else image.true_class,
        "method": label, "budget": budget, "seed": seed,
    }  # fmt: skip


def undefined_rows(
    settings: StabilitySettings, index: int, image: BenchmarkImage, label: str, reason: str
) -> list[dict]:
    """The rows of unit (image, ``label``) when none of its explanations could be made: NaN, and ``reason``."""
    if label == REFERENCE:
        cells = [(settings.reference_samples, settings.reference_seed)]
    else:
        budgets = {m.label: m.budgets for m in settings.methods}[label]
        cells = [(b, s) for s in settings.seeds for b in budgets]
    nan = _text(math.nan)
    return [{**_common(index, image, label, b, s), "target_class": "", "forwards": "", "seconds": nan, "r2": nan,
             "deletion_auc": nan, "insertion_auc": nan, "jaccard_vs_reference": nan, "kendall_vs_reference": nan,
             "superpixels": "", "reason": reason, "attributions": ""}
            for b, s in cells]  # fmt: skip


class ImageStability:
    """The work of a stability run on one image, in this process or in a Ray worker (:mod:`cnnxai.distributed`).
    An item is ``(index, image, pending labels, reference)``: :meth:`load` reads the image and puts it in the
    model-input frame (CPU only); :meth:`compute` segments and predicts it once, then yields each pending unit in
    the run's order (the reference first, whose attributions the others are compared with; ``reference`` is the
    stored one when the reference is not pending) as ``(label, rows, curve forwards)``.

    Args:
        settings: the run's :class:`StabilitySettings`; model: the classifier on its device.
        batch_size: inputs per forward pass (None: from the device); debug: let an explainer's error stop the run.
    """

    def __init__(
        self, settings: StabilitySettings, model: nn.Module, batch_size: int | None = None, debug: bool = False
    ) -> None:
        self.settings, self.model, self.batch_size, self.debug = settings, model, batch_size, debug
        self.device = module_device(model)

    def load(self, item: tuple) -> tuple:
        index, image, pending, reference = item
        settings = self.settings
        try:
            frame = to_model_frame(image.load(), settings.preprocess, settings.resize, settings.frame_size)
        except UserInputError as error:
            print(f"error: {error}", file=sys.stderr)
            return index, image, pending, reference, f"{UNREADABLE}: {error}"
        return index, image, pending, reference, frame

    def compute(self, loaded: tuple) -> Iterator[tuple[str, list[dict], int]]:
        index, image, pending, reference, frame = loaded
        settings = self.settings
        if isinstance(frame, str):  # could not be read: the reason
            for label in pending:
                yield label, undefined_rows(settings, index, image, label, frame), 0
            return
        segments = segment_image(frame, settings.segmenter, seed=settings.seed)
        num = int(segments.max()) + 1
        if num < 2:
            for label in pending:
                yield label, undefined_rows(settings, index, image, label,
                                            f"{settings.segmenter} found a single superpixel"), 0  # fmt: skip
            return
        session = ImageSession(self.model, frame)
        session.fix_segments(segments)
        target = session.predicted
        curves = SuperpixelCurves(
            self.model, frame, segments, target, settings.hide_color, settings.curve_steps, self.batch_size
        )
        context = {"index": index, "image": image, "frame": frame, "target": target, "session": session,
                   "curves": curves, "num": num}  # fmt: skip
        counted = 0  # the curves' forwards already handed over
        methods = {m.label: m for m in settings.methods}
        for label in pending:
            if label == REFERENCE:
                row = self._explain(context, "lime", {**settings.reference_options,
                                                      "num_samples": settings.reference_samples},
                                    REFERENCE, settings.reference_samples, settings.reference_seed, None)  # fmt: skip
                reference = _attributions(row)
                rows = [row]
            else:
                method, rows = methods[label], []
                for seed in settings.seeds:
                    for budget in method.budgets:
                        rows.append(self._explain(context, method.name, method.options_for(budget), label, budget,
                                                  seed, reference))  # fmt: skip
            yield label, rows, curves.forwards - counted
            counted = curves.forwards

    def _explain(
        self, context: dict, name: str, options: dict, label: str, budget, seed: int, reference
    ) -> dict:
        """One explanation and its row."""
        settings = self.settings
        row = {**_common(context["index"], context["image"], label, budget, seed),
               "target_class": context["target"], "superpixels": context["num"]}  # fmt: skip
        nan = _text(math.nan)
        start = time.perf_counter()
        try:
            result = explain(
                name, self.model, context["frame"], context["target"], seed=seed, device=self.device,
                batch_size=self.batch_size, session=context["session"], **options,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            found = read_explanation(result)
            if found.attributions.shape != (context["num"],):
                raise ValueError(
                    f"{found.attributions.shape[0]} attributions for {context['num']} superpixels: the explainer "
                    "did not use the run's segmentation"
                )
        except (ValueError, RuntimeError) as error:  # UserInputError is a ValueError; CUDA's a RuntimeError
            reason = explanation_failed(error, label, context["image"].key, self.debug)
            return {**row, "forwards": "", "seconds": nan, "r2": nan, "deletion_auc": nan, "insertion_auc": nan,
                    "jaccard_vs_reference": nan, "kendall_vs_reference": nan, "reason": reason, "attributions": ""}  # fmt: skip
        deletion, insertion = context["curves"].areas(found.attributions)
        reasons = []
        if reference is None:
            agreement = (math.nan, math.nan)
            reasons.append(
                "the reference itself" if label == REFERENCE else "no reference (it failed on this image)"
            )
        else:
            agreement = (top_k_jaccard(found.attributions, reference, settings.top_k),
                         kendall(found.attributions, reference))  # fmt: skip
            reasons.append(top_k_undefined(context["num"], settings.top_k))
        return {
            **row, "forwards": found.forwards, "seconds": _text(seconds), "r2": _text(found.score),
            "deletion_auc": _text(deletion), "insertion_auc": _text(insertion),
            "jaccard_vs_reference": _text(agreement[0]), "kendall_vs_reference": _text(agreement[1]),
            "reason": "; ".join(r for r in reasons if r),
            "attributions": json.dumps([float(v) for v in found.attributions]),
        }  # fmt: skip


def stability_in_worker(
    settings: StabilitySettings, load: Callable[[torch.device], tuple[nn.Module, dict]], batch_size: int | None,
    debug: bool, device: str,
) -> ImageStability:  # fmt: skip
    """An :class:`ImageStability` built inside a Ray worker on ``device`` ('cuda': its own GPU), with the model
    loaded there by ``load(device)`` (e.g. a partial of :func:`cnnxai.zoo.load_classifier_model`)."""
    model, _ = load(resolve_device(device))
    return ImageStability(settings, model, batch_size, debug)
