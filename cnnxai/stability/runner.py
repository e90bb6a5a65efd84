"""A stability run: every image x method x budget N x seed, one row each in rows.csv, resumable and shardable.

Per image: one :class:`~cnnxai.session.ImageSession` across all methods, seeds and budgets, holding one segmentation
(the run's segmenter and seed) used by every explanation (the LIME neighbourhood of a seed is sampled once; per the
explainers' contract, a smaller N is a prefix of a larger one's samples) and the prediction (the target), and one
:class:`~cnnxai.stability.curves.SuperpixelCurves` that caches every perturbed image of the deletion and insertion
curves. The reference (plain ``lime`` at ``reference_samples`` with a seed that is none of the test seeds) is a
unit of its own, done first; a resumed run reads its attributions back from rows.csv.

The unit of work is one image with one method (all its budgets and seeds); rows go to disk through the benchmark's
:class:`~cnnxai.benchmark.store.ResultStore`, so a killed run resumes to the same rows, and shards split images
exactly as MyFaithfulness.py's.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnxai.benchmark.data import BenchmarkImage, make_groups, shard_groups
from cnnxai.benchmark.runner import ImageFolderRun, explanation_failed
from cnnxai.benchmark.store import ResultStore, read_rows
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
from lime_ext import segment_image


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
    :class:`~cnnxai.benchmark.runner.ImageFolderRun`'s, with ``settings`` a :class:`StabilitySettings`."""

    def __init__(self, settings: StabilitySettings, *args: Any, **kwargs: Any) -> None:
        super().__init__(settings, *args, **kwargs)
        self.mine = shard_groups(make_groups(self.images, 1, settings.seed), self.shard)
        self.store = ResultStore(
            self.rows_folder, rows=(ROWS_FILE, ROW_COLUMNS), curves=None,
            key=lambda row: (row["image"], row["budget"], row["seed"]),
        )  # fmt: skip

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
            model={**self.model_info, "device": str(self.device)}, batch_size=self.batch_size, **extra,
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

    def _compute(self, expected: dict, done: set, bar: Any) -> dict:
        curve_forwards = 0
        for group in self.mine:
            pending = [unit for unit in expected if unit[0] == group.index and unit not in done]
            if pending:
                curve_forwards += self._image(group.index, group.images[0], [u[1] for u in pending], bar)
        return {"curve_forwards": curve_forwards}

    def _image(self, index: int, image: BenchmarkImage, pending: list[str], bar) -> int:
        """Every pending unit of one image, in the order of the run (the reference first); returns the curves'
        forwards."""
        settings = self.settings
        methods = {m.label: m for m in settings.methods}
        try:
            frame = to_model_frame(image.load(), settings.preprocess, settings.resize, settings.frame_size)
        except UserInputError as error:
            print(f"error: {error}", file=sys.stderr)
            for label in pending:
                self._undefined(index, image, label, f"{UNREADABLE}: {error}", methods, bar)
            return 0
        segments = segment_image(frame, settings.segmenter, seed=settings.seed)
        num = int(segments.max()) + 1
        if num < 2:
            for label in pending:
                self._undefined(
                    index, image, label, f"{settings.segmenter} found a single superpixel", methods, bar
                )
            return 0
        session = ImageSession(self.model, frame)
        session.fix_segments(segments)
        target = session.predicted
        curves = SuperpixelCurves(
            self.model, frame, segments, target, settings.hide_color, settings.curve_steps, self.batch_size
        )
        context = {"index": index, "image": image, "frame": frame, "target": target, "session": session,
                   "curves": curves, "num": num}  # fmt: skip
        if REFERENCE in pending:
            row = self._explain(context, "lime", {**settings.reference_options,
                                                  "num_samples": settings.reference_samples},
                                REFERENCE, settings.reference_samples, settings.reference_seed, None)  # fmt: skip
            self.store.append([row])
            if bar is not None:
                bar.update(1)
            reference = _attributions(row)
        else:
            reference = self._stored_reference(image.key)
        for label in pending:
            if label == REFERENCE:
                continue
            method, rows = methods[label], []
            for seed in settings.seeds:
                for budget in method.budgets:
                    rows.append(self._explain(context, method.name, method.options_for(budget), label, budget, seed,
                                              reference))  # fmt: skip
                    if bar is not None:
                        bar.update(1)
            self.store.append(rows)
        return curves.forwards

    def _stored_reference(self, key: str) -> np.ndarray | None:
        """The reference attributions of image ``key`` as rows.csv holds them (so a resumed run reads the same)."""
        for row in read_rows(self.store.scores_path, ROW_COLUMNS):
            if row["image"] == key and row["method"] == REFERENCE:
                return _attributions(row)
        return None

    def _common(self, index: int, image: BenchmarkImage, label: str, budget, seed: int) -> dict:
        return {
            "image": image.key, "group": index, "true_class": "" if image.true_class is None else image.true_class,
            "method": label, "budget": budget, "seed": seed,
        }  # fmt: skip

    def _undefined(self, index, image, label, reason, methods, bar) -> None:
        settings = self.settings
        if label == REFERENCE:
            cells = [(settings.reference_samples, settings.reference_seed)]
        else:
            cells = [(b, s) for s in settings.seeds for b in methods[label].budgets]
        nan = _text(math.nan)
        rows = [{**self._common(index, image, label, b, s), "target_class": "", "forwards": "", "seconds": nan,
                 "r2": nan, "deletion_auc": nan, "insertion_auc": nan, "jaccard_vs_reference": nan,
                 "kendall_vs_reference": nan, "superpixels": "", "reason": reason, "attributions": ""}
                for b, s in cells]  # fmt: skip
        self.store.append(rows)
        if bar is not None:
            bar.update(len(rows))

    def _explain(
        self, context: dict, name: str, options: dict, label: str, budget, seed: int, reference
    ) -> dict:
        """One explanation and its row."""
        settings = self.settings
        row = {**self._common(context["index"], context["image"], label, budget, seed),
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
