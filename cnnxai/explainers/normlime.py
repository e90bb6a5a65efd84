"""NormLIME (Ahern et al. 2019; PaddleX's two variants): LIME weights re-weighted by global, per-class cluster weights.

Superpixels are described by the explained model's first convolution (bilinearly upsampled): x_j =
L2-normalise([F(centroid_j), mean F over superpixel j]). KMeans (K=50 by default) over the superpixels of a
reference image folder defines "concept" clusters. Global weights per class y and cluster k:

- 'standard': g_y(k) = mean over reference images i with label y among their top labels (p >= 0.05, at most 5)
  and superpixels j in cluster k of w_ij^2 / sum_j' |w_ij'| (LIME weights w);
- 'logreg': a multinomial logistic regression from "which clusters occur in a 10x10 grid of blocks" to the
  model's predicted class; g_c = softmax(10 (w_c - max w_c)); an unseen class gets 1/K.

At explanation time the LIME weight of superpixel j is multiplied by g_y(cluster(j)). The fitted global model
is cached in a file keyed by the model's weights, the reference images and the settings.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from torch import nn

from cam_ext.hooks import forward_with_hooks
from cnnxai.explainers.lime_family import LIME_OPTIONS, shared_neighbourhood
from cnnxai.explainers.registry import Attribution, ExplainContext, register
from cnnxai.images import SAMPLE_IMAGES, find_images, load_image, sample_image
from cnnxai.options import Option, at_least
from cnnxai.outputs import json_fallback
from cnnxai.preprocess import to_model_frame
from lime_ext import CamLimeExplainer, LimeSettings, TorchClassifier

VARIANTS = ("standard", "logreg")
CLUSTERS = 50  # KMeans clusters of superpixels (PaddleX's)
REFERENCE_SETTINGS = LimeSettings(num_samples=3000)  # LIME on each reference image (PaddleX: 3000 samples)


def first_conv_features(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The output of the first Conv2d the model runs, upsampled bilinearly to the input size: float64 (K,H,W) on the
    host (NormLIME's fit keeps these for every reference image: on the host they do not fill the GPU)."""
    captured: list[torch.Tensor] = []

    def keep_first(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not captured:
            captured.append(output)

    forward_with_hooks(model, x, [(m, keep_first) for m in model.modules() if isinstance(m, nn.Conv2d)])
    if not captured:
        raise ValueError(
            "normlime needs a model with a Conv2d layer (its first convolution gives the superpixel features)"
        )
    upsampled = F.interpolate(captured[0].float(), size=x.shape[-2:], mode="bilinear", align_corners=False)[0]
    return upsampled.cpu().numpy().astype(np.float64)


def region_features(feats: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """(R, 2K) features (K,H,W) of regions (H,W ids 0..R-1): [value at the rounded centroid, mean], L2-normalised."""
    channels = feats.shape[0]
    flat = feats.reshape(channels, -1)
    ids = regions.ravel()
    count = np.bincount(ids)
    means = (
        np.stack([np.bincount(ids, weights=row, minlength=len(count)) for row in flat], axis=1)
        / np.maximum(count, 1)[:, None]
    )
    rows, cols = np.indices(regions.shape)
    cy = np.round(np.bincount(ids, weights=rows.ravel()) / np.maximum(count, 1)).astype(int)
    cx = np.round(np.bincount(ids, weights=cols.ravel()) / np.maximum(count, 1)).astype(int)
    centre = feats[:, cy, cx].T
    vectors = np.concatenate([centre, means], axis=1)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def grid_regions(height: int, width: int, cells: int = 10) -> np.ndarray:
    """PaddleX's fixed grid: blocks of floor(H/cells)+1 pixels, ids 0..R-1."""
    block_h, block_w = height // cells + 1, width // cells + 1
    rows, cols = np.indices((height, width))
    return (rows // block_h) * cells + (cols // block_w)


@dataclass(frozen=True)
class NormLimeModel:
    """Cluster centres (K, 2C) and global weights per class: ``weights[variant][label]`` (K,)."""

    centres: np.ndarray
    weights: dict[str, dict[int, np.ndarray]]

    def clusters(self, vectors: np.ndarray) -> np.ndarray:
        distances = ((vectors[:, None, :] - self.centres[None]) ** 2).sum(-1)
        return distances.argmin(axis=1)

    def global_weights(self, variant: str, label: int) -> np.ndarray:
        table = self.weights[variant]
        if label in table:
            return table[label]
        k = len(self.centres)
        return np.full(k, 1.0 / k) if variant == "logreg" else np.zeros(k)  # PaddleX: unseen class

    def save(self, path: Path) -> None:
        arrays = {"centres": self.centres}
        for variant, table in self.weights.items():
            labels = sorted(table)
            arrays[f"{variant}_labels"] = np.array(labels, dtype=np.int64)
            arrays[f"{variant}_weights"] = (
                np.stack([table[y] for y in labels]) if labels else np.zeros((0, len(self.centres)))
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(temporary, **arrays)
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path) -> NormLimeModel:
        data = np.load(path)
        weights = {
            v: {int(y): data[f"{v}_weights"][i] for i, y in enumerate(data[f"{v}_labels"])} for v in VARIANTS
        }
        return cls(data["centres"], weights)


def fit_normlime(
    model: nn.Module,
    images: list[np.ndarray],
    settings: LimeSettings = REFERENCE_SETTINGS,
    num_clusters: int = CLUSTERS,
    seed: int = 0,
    batch_size: int | None = None,
    label_threshold: float = 0.05,
    max_labels: int = 5,
) -> NormLimeModel:
    """Fit the clusters and both variants' global weights on reference images (RGB uint8, model frame), each
    explained by LIME with ``settings`` (PaddleX: 3000 samples per reference image)."""
    classifier = TorchClassifier(model)
    explainer = CamLimeExplainer(classifier, settings, batch_size)
    per_image = []
    for index, image in enumerate(images):
        features = first_conv_features(model, classifier.prepare_rgb(image)[None])
        neighbourhood = explainer.sample(image, seed + index)
        per_image.append((features, neighbourhood, region_features(features, neighbourhood.segments)))
    vectors = np.concatenate([v for _, _, v in per_image])
    k = min(num_clusters, len(vectors))
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(vectors)
    centres = kmeans.cluster_centers_
    model_ = NormLimeModel(centres, {})
    # 'standard': mean of squared, L1-normalised LIME weights per (label, cluster)
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, np.ndarray] = {}
    for _, neighbourhood, vectors_i in per_image:
        clusters = model_.clusters(vectors_i)
        probabilities = neighbourhood.predictions[0]
        order = np.argsort(probabilities)[::-1]
        labels = [int(c) for c in order[:max_labels] if probabilities[c] >= label_threshold] or [
            int(order[0])
        ]
        for label in labels:
            w = neighbourhood.fit(labels=[label], cam_mode="none").labels[label].weights
            share = w**2 / max(np.abs(w).sum(), 1e-12)
            sums.setdefault(label, np.zeros(k))
            counts.setdefault(label, np.zeros(k))
            np.add.at(sums[label], clusters, share)
            np.add.at(counts[label], clusters, 1)
    standard = {y: np.where(counts[y] > 0, sums[y] / np.maximum(counts[y], 1), 0.0) for y in sums}
    # 'logreg': which clusters occur in a 10x10 grid -> predicted class
    indicators, targets = [], []
    for features, neighbourhood, _ in per_image:
        grid = grid_regions(*neighbourhood.segments.shape)
        present = np.zeros(k)
        present[np.unique(model_.clusters(region_features(features, grid)))] = 1
        indicators.append(present)
        targets.append(int(np.argmax(neighbourhood.predictions[0])))
    logreg: dict[int, np.ndarray] = {}
    classes = sorted(set(targets))
    if len(classes) >= 2:
        regression = LogisticRegression(max_iter=1000).fit(np.stack(indicators), targets)
        coef = regression.coef_
        rows = (
            {classes[0]: -coef[0], classes[1]: coef[0]}
            if len(classes) == 2
            else dict(zip(classes, coef, strict=True))
        )
        for label, w in rows.items():
            tempered = np.exp(10.0 * (w - w.max()))
            logreg[label] = tempered / tempered.sum()
    return NormLimeModel(centres, {"standard": standard, "logreg": logreg})


def _reference_images(context: ExplainContext) -> tuple[list[np.ndarray], list[str]]:
    folder = context.option("reference")
    if folder is None:
        return [to_model_frame(sample_image(name)) for name in SAMPLE_IMAGES], [
            f"sample:{n}" for n in SAMPLE_IMAGES
        ]
    paths = find_images(folder)
    return [to_model_frame(load_image(p)) for p in paths], [
        f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths
    ]


def _cache_key(model: nn.Module, sources: list[str], settings: dict) -> str:
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(
        json.dumps({"sources": sources, **settings}, sort_keys=True, default=json_fallback).encode()
    )
    return digest.hexdigest()[:24]


def normlime_model(context: ExplainContext) -> NormLimeModel:
    """The fitted global model for this model, reference folder and settings: from the cache, or fitted now."""
    lime = context.settings(LimeSettings, num_samples=context.option("samples"))
    settings = {
        "num_clusters": context.option("clusters"),
        "num_samples": lime.num_samples,
        "segmenter": lime.segmenter,
        "hide_color": str(lime.hide_color),
        "seed": context.seed,
    }
    key_in_memory = ("normlime", settings["num_clusters"], lime, context.option("reference"))
    if key_in_memory in context.session.memo:
        return context.session.memo[key_in_memory]
    images, sources = _reference_images(context)
    cache_dir = Path(context.option("cache") or Path.home() / ".cache" / "cnnxai" / "normlime")
    path = cache_dir / f"{_cache_key(context.model, sources, settings)}.npz"
    if path.exists():
        fitted = NormLimeModel.load(path)
    else:
        fitted = fit_normlime(
            context.model, images, lime, settings["num_clusters"], context.seed, context.batch_size
        )
        fitted.save(path)
    context.session.memo[key_in_memory] = fitted
    return fitted


def _normlime(context: ExplainContext, variant: str) -> Attribution:
    fitted = normlime_model(context)
    neighbourhood = shared_neighbourhood(context, context.settings(LimeSettings))
    lime_weights = neighbourhood.fit(labels=[context.target], cam_mode="none").labels[context.target].weights
    clusters = fitted.clusters(
        region_features(first_conv_features(context.model, context.input_tensor), neighbourhood.segments)
    )
    global_weight = fitted.global_weights(variant, context.target)[clusters]
    combined = lime_weights * global_weight
    return Attribution(
        combined.astype(np.float32)[neighbourhood.segments],
        {"global_weight": global_weight, "clusters": clusters},
    )


def _is_folder(value: str) -> str | None:
    return None if Path(value).is_dir() else "no such folder; give a folder of reference images"


NORMLIME_OPTIONS = (
    *LIME_OPTIONS,
    Option("reference", None, "folder of reference images its clusters and global weights are fitted on (once, "
           "cached); default: the built-in photos", parse=str, check=_is_folder, alias="normlime_reference"),
    Option("clusters", CLUSTERS, "KMeans clusters of superpixels", check=at_least(2), alias="normlime_clusters"),
    Option("samples", REFERENCE_SETTINGS.num_samples, "LIME samples per reference image when fitting the global "
           "weights (PaddleX: 3000)", check=at_least(2), alias="normlime_samples"),
    Option("cache", None, "folder of the fitted global models; default: ~/.cache/cnnxai/normlime", parse=str),
)  # fmt: skip


@register(
    "normlime",
    "NormLIME (standard): LIME weight x mean squared L1-normalised LIME weight of its cluster (KMeans 50)",
    NORMLIME_OPTIONS,
    random=True,
    neighbourhood=True,
)
def normlime(context: ExplainContext) -> Attribution:
    return _normlime(context, "standard")


@register(
    "normlime_logreg",
    "NormLIME (PaddleX's newer variant): LIME weight x softmax(10 w) of a logistic regression on clusters",
    NORMLIME_OPTIONS,
    random=True,
    neighbourhood=True,
)
def normlime_logreg(context: ExplainContext) -> Attribution:
    return _normlime(context, "logreg")
