"""The localisation benchmark: every explainer on test images of the synthetic set, scored against the masks."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from cnnxai.benchmark.runner import postprocess
from cnnxai.explainers import REGISTRY, explain
from cnnxai.groundtruth.synthetic import SyntheticSet
from cnnxai.metrics import LOCALISATION_METRICS, localisation_scores, metric_settings
from lime_ext import TorchClassifier

# Every registered explainer except NormLIME's two variants, whose global weights need a fit of their own on a
# reference image folder of the model's images (Localisation.py refuses them).
EXCLUDED_BY_DEFAULT = ("normlime", "normlime_logreg")
SCORE_COLUMNS = ("image", "label", "predicted", "method", "metric", "value", "seconds", "note")


# The applications' table: ours against LIME, the CAMs of both priors, RISE (D-RISE on a box) and occlusion.
TASK_METHODS = ("gradlime", "camlime", "lime", "gradcam", "gradcamelementwise", "rise", "occlusion")


def default_methods(task: str = "classification") -> list[str]:
    """The explainers a localisation run scores by default: every one but NormLIME's two, or for a task
    (detection, segmentation) TASK_METHODS."""
    if task != "classification":
        return list(TASK_METHODS)
    return [name for name in REGISTRY if name not in EXCLUDED_BY_DEFAULT]


@dataclass
class LocalisationResult:
    """``rows``: one per image x method x metric (``SCORE_COLUMNS``); ``maps[method]`` (N,H,W) float32 as
    scored (after post-processing); ``seconds[method]`` total explaining time; ``failures[method]`` reasons."""

    rows: list[dict] = field(default_factory=list)
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    predicted: np.ndarray | None = None


def predictions(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's classes for RGB uint8 images (N,H,W,3): int64 (N,)."""
    classifier = TorchClassifier(model)
    out = []
    with classifier.session():
        for start in range(0, len(images), batch_size):
            batch = torch.stack(
                [classifier.prepare_rgb(image) for image in images[start : start + batch_size]]
            )
            out.append(classifier.forward_prepared(batch).argmax(1).cpu())
    return torch.cat(out).numpy()


def run_localisation(
    model: nn.Module,
    dataset: SyntheticSet,
    methods: Sequence[str],
    options: Mapping[str, Mapping[str, Any]],
    seed: int = 0,
    attribution: str = "positive",
    top_k: int | None = None,
    tolerance: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    debug: bool = False,
    case_models: Sequence[nn.Module] | None = None,
) -> LocalisationResult:
    """Explain each image's true class with each method and score the post-processed map against its mask.

    ``case_models`` (one per image) replaces ``model`` for the applications: image i is explained on
    ``case_models[i]``, a :class:`~cnnxai.tasks.targets.TargetScore` whose one output (class 0) is the score of
    that image's box or region, and the label is then only recorded (it is the class of that box or region).

    ``options[method]`` are the options given to each explainer (its declared defaults fill the rest). One
    ``shared`` dict per image, so LIME, GradLIME, CamLIME and KernelSHAP fit the same perturbations. An explainer that fails on an image
    (ValueError/RuntimeError) gives NaN rows with the reason, and a warning (``debug`` re-raises). ``top_k`` and
    ``tolerance`` set TopKIntersection's k and PointingGame's tolerance (None: the metrics' defaults).
    """
    given = {
        "PointingGame": {"tolerance": tolerance},
        "TopKIntersection": {} if top_k is None else {"k": top_k},
    }
    settings = metric_settings(LOCALISATION_METRICS, given)
    device = next(model.parameters()).device
    if case_models is not None and len(case_models) != len(dataset):
        raise ValueError(f"{len(case_models)} case models for {len(dataset)} images")
    predicted = predictions(model, dataset.images) if case_models is None else dataset.labels.copy()
    result = LocalisationResult(predicted=predicted)
    size = dataset.images.shape[1:3]
    result.maps = {m: np.full((len(dataset), *size), np.nan, dtype=np.float32) for m in methods}
    result.seconds = dict.fromkeys(methods, 0.0)
    total = len(dataset) * len(methods)
    with tqdm(total=total, desc="localisation", unit="map", disable=not progress) as bar:
        for i in range(len(dataset)):
            image, mask, label = dataset.images[i], dataset.masks[i], int(dataset.labels[i])
            explained, target = (model, label) if case_models is None else (case_models[i], 0)
            shared: dict = {}
            for method in methods:
                bar.set_postfix_str(method, refresh=False)
                start = time.perf_counter()
                note = ""
                try:
                    raw = explain(method, explained, image, target, seed=seed, device=device,
                                  batch_size=batch_size, shared=shared, **options.get(method, {})).map  # fmt: skip
                    scored = postprocess(raw, attribution)
                    scores = {m: r.value for m, r in localisation_scores(scored, mask, settings).items()}
                    result.maps[method][i] = scored
                except (ValueError, RuntimeError) as error:
                    if debug:
                        raise
                    note = f"{type(error).__name__}: {error}".replace("\n", " ")
                    result.failures.setdefault(method, note)
                    scores = dict.fromkeys(LOCALISATION_METRICS, float("nan"))
                seconds = time.perf_counter() - start
                result.seconds[method] += seconds
                if not note and any(math.isnan(v) for v in scores.values()):
                    note = (
                        "no positive relevance"
                        if math.isnan(scores["RelevanceMassAccuracy"])
                        else "undefined"
                    )
                for metric, value in scores.items():
                    result.rows.append({
                        "image": int(dataset.indices[i]), "label": label, "predicted": int(result.predicted[i]),
                        "method": method, "metric": metric, "value": value, "seconds": round(seconds, 4),
                        "note": note,
                    })  # fmt: skip
                bar.update(1)
    for method, reason in result.failures.items():
        warnings.warn(f"{method} failed on some images ({reason}); their scores are NaN", stacklevel=2)
    return result
