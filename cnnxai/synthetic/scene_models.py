"""A small object detector and a small semantic segmenter of the procedural scenes (:mod:`cnnxai.synthetic.scenes`),
trained in a minute or two on a CPU and cached by their settings like :class:`~cnnxai.synthetic.shapes_model.ShapesNet`.

Both follow torchvision's conventions, so that code written for torchvision's detection and segmentation models
runs on them: the detector takes (B,3,H,W) floats in [0,1] and returns, in eval mode, one dict of ``boxes``,
``scores`` and ``labels`` per image; the segmenter takes ImageNet-normalised (B,3,H,W) and returns ``{"out":
logits}``. The detector's scores and boxes are differentiable with respect to its input (only the choice of the
peaks is not), so Grad-CAM and gradient methods can explain one box.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou

from cnnxai.synthetic.scenes import CLASSES, SceneSettings, make_scenes
from cnnxai.synthetic.shapes_model import normalised
from cnnxai.synthetic.training import load_or_train, train_model
from lime_ext import IMAGENET_MEAN, IMAGENET_STD, evaluation_mode, module_device

DETECTOR_CAM_LAYER = "backbone.block3"  # the last feature map (stride 4) before the detector's heads
SEGMENTER_CAM_LAYER = "encoder.block3"  # the segmenter's coarsest, most semantic feature map (stride 4)
SEGMENTATION_CLASSES = ("background", *CLASSES)  # the segmenter's classes: label-map value v is class v
BACKGROUND_WEIGHT = 0.25  # of background pixels in the segmenter's loss: most pixels are easy background


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """A 3x3 convolution (no bias), batch norm and a ReLU module; padding keeps the size (divided by stride)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


def _head(width: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, outputs, 1))


class ShapesDetector(nn.Module):
    """A tiny CenterNet: a backbone to stride 4, a heatmap head (one sigmoid map per class, whose local maxima are
    the objects' centres) and a box head (width and height in stride units, and the centre's offset within its
    cell).

    The backbone (``stem`` and ``block1`` halve the size, ``block2`` and ``block3`` are dilated by 2 and 4) sees
    63 pixels around a cell, more than the largest object, so that a cell can tell a shape from its neighbours.

    Input: (B,3,H,W) float in [0,1] (normalised to ImageNet's statistics inside), H and W multiples of 4.
    Output in train mode: the raw maps ``{"heatmap": logits (B,K,H/4,W/4), "box": (B,4,H/4,W/4)}`` (what
    :func:`detection_loss` takes). In eval mode: one dict per image, ``boxes`` float (n,4) xyxy in input pixels,
    ``scores`` (n,) and ``labels`` int64 (n,) in 0..K-1, sorted by score descending: the at most
    ``max_detections`` peaks (a cell not below any of its 3x3 neighbours of the same class) whose score exceeds
    ``score_threshold``. That threshold is low on purpose, so that a perturbed image still yields its weak
    candidates; the caller keeps the ones it trusts.
    """

    stride = 4

    def __init__(
        self,
        num_classes: int = len(CLASSES),
        width: int = 32,
        max_detections: int = 20,
        score_threshold: float = 0.05,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.max_detections = max_detections
        self.score_threshold = score_threshold
        self.backbone = nn.Sequential(
            OrderedDict(
                stem=_block(3, 16, stride=2),
                block1=_block(16, width, stride=2),
                block2=_block(width, width, dilation=2),
                block3=_block(width, width, dilation=4),
            )
        )
        self.heatmap = _head(width, num_classes)
        self.box = _head(width, 4)
        with (
            torch.no_grad()
        ):  # CenterNet's prior: every cell starts at a score of 0.1, so the focal loss starts low
            self.heatmap[-1].bias.fill_(-2.19)

    def maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The raw maps of (B,3,H,W) images in [0,1]: ``heatmap`` logits (B,K,h,w), ``box`` (B,4,h,w)."""
        mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype)[:, None, None]
        std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype)[:, None, None]
        features = self.backbone((images - mean) / std)
        return {"heatmap": self.heatmap(features), "box": self.box(features)}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        maps = self.maps(images)
        if self.training:
            return maps
        return self.decode(maps, images.shape[-2:])

    def decode(self, maps: dict[str, torch.Tensor], size: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """Detections from the raw maps (see the class): peaks chosen on detached scores, then the scores and
        box parameters gathered from the maps themselves, so that they keep their gradients."""
        heat = torch.sigmoid(maps["heatmap"])
        batch, classes, rows, cols = heat.shape
        with torch.no_grad():
            peaks = heat == F.max_pool2d(heat, 3, stride=1, padding=1)
            candidates = torch.where(peaks, heat, torch.zeros_like(heat)).flatten(1)
            top_scores, top = candidates.topk(min(self.max_detections, candidates.shape[1]), dim=1)
        height, width = float(size[0]), float(size[1])
        detections = []
        for b in range(batch):
            keep = top[b][top_scores[b] > self.score_threshold]  # already in descending order
            label, cell = keep // (rows * cols), keep % (rows * cols)
            row, col = cell // cols, cell % cols
            box = maps["box"][b, :, row, col]  # (4,n): width, height (stride units), offset x, offset y
            centre_x = (col + box[2]) * self.stride
            centre_y = (row + box[3]) * self.stride
            half_w = box[0].clamp(min=0) * self.stride / 2
            half_h = box[1].clamp(min=0) * self.stride / 2
            boxes = torch.stack(
                [
                    (centre_x - half_w).clamp(0, width),
                    (centre_y - half_h).clamp(0, height),
                    (centre_x + half_w).clamp(0, width),
                    (centre_y + half_h).clamp(0, height),
                ],
                dim=1,
            )
            detections.append({"boxes": boxes, "scores": heat[b, label, row, col], "labels": label})
        return detections


class ShapesSegmenter(nn.Module):
    """A tiny encoder-decoder: ``encoder.block1`` at full size, ``block2`` at 1/2, ``block3`` at 1/4 (dilated by 2
    and 4, so that a pixel sees 61 pixels around it, more than the largest object); the decoder upsamples and
    joins each finer encoder map (a U-Net's skips), which puts the boundaries back on the pixel.

    Input: ImageNet-normalised (B,3,H,W) (:func:`cnnxai.synthetic.shapes_model.normalised` of uint8 images),
    H and W multiples of 4. Output: ``{"out": logits (B,K,H,W)}``, K = 5 (SEGMENTATION_CLASSES), like
    torchvision's segmentation models.
    """

    def __init__(self, num_classes: int = len(SEGMENTATION_CLASSES), width: int = 8) -> None:
        super().__init__()
        self.encoder = nn.ModuleDict(
            {
                "block1": _block(3, width),
                "block2": nn.Sequential(_block(width, 2 * width, stride=2), _block(2 * width, 2 * width)),
                "block3": nn.Sequential(
                    _block(2 * width, 4 * width, stride=2),
                    _block(4 * width, 4 * width, dilation=2),
                    _block(4 * width, 4 * width, dilation=4),
                ),
            }
        )
        self.decoder = nn.ModuleDict(
            {
                "up2": _block(4 * width + 2 * width, 2 * width),
                "up1": _block(2 * width + width, width),
                "classifier": nn.Conv2d(width, num_classes, 1),
            }
        )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        full = self.encoder["block1"](images)
        half = self.encoder["block2"](full)
        quarter = self.encoder["block3"](half)
        up = F.interpolate(quarter, size=half.shape[-2:], mode="bilinear", align_corners=False)
        up = self.decoder["up2"](torch.cat([up, half], dim=1))
        up = F.interpolate(up, size=full.shape[-2:], mode="bilinear", align_corners=False)
        up = self.decoder["up1"](torch.cat([up, full], dim=1))
        return {"out": self.decoder["classifier"](up)}


def detection_targets(
    targets: Sequence[dict[str, torch.Tensor]],
    size: Sequence[int],
    num_classes: int = len(CLASSES),
    stride: int = 4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CenterNet's training targets of torchvision-style ``targets`` (``boxes`` (n,4) xyxy, ``labels`` (n,)) for
    images of ``size`` (H, W): (heatmap (N,K,h,w) in [0,1], box (N,4,h,w), centres bool (N,h,w)).

    An object's centre cell holds 1 in its class's heatmap, and a Gaussian around it (sigma a sixth of the
    box's shorter side, at least half a cell) tells the focal loss how near a miss is; the box map holds, at
    the centre cell only, its width and height in stride units and the centre's offset within the cell.
    """
    rows, cols = size[0] // stride, size[1] // stride
    heat = torch.zeros(len(targets), num_classes, rows, cols)  # device-ok: training targets, built on the host
    box = torch.zeros(len(targets), 4, rows, cols)  # device-ok: training targets, built on the host
    centres = torch.zeros(len(targets), rows, cols, dtype=torch.bool)  # device-ok: training targets, built on the host
    grid_y, grid_x = torch.meshgrid(torch.arange(rows).float(), torch.arange(cols).float(), indexing="ij")  # device-ok: training targets, built on the host
    for i, target in enumerate(targets):
        for (x1, y1, x2, y2), label in zip(target["boxes"].tolist(), target["labels"].tolist(), strict=True):
            cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
            col, row = min(int(cx), cols - 1), min(int(cy), rows - 1)
            sigma = max(min(x2 - x1, y2 - y1) / stride / 6.0, 0.5)
            gaussian = torch.exp(-((grid_x - col) ** 2 + (grid_y - row) ** 2) / (2 * sigma**2))
            heat[i, label] = torch.maximum(heat[i, label], gaussian)
            box[i, :, row, col] = torch.tensor([(x2 - x1) / stride, (y2 - y1) / stride, cx - col, cy - row])  # device-ok: training targets, built on the host
            centres[i, row, col] = True
    return heat, box, centres


def detection_loss(
    maps: dict[str, torch.Tensor], heat: torch.Tensor, box: torch.Tensor, centres: torch.Tensor
) -> torch.Tensor:
    """CenterNet's loss: the penalty-reduced focal loss of the heatmap (alpha 2, beta 4) plus the L1 loss of the
    box at the centres (sizes weighted 0.1, offsets 1), each summed and divided by the number of objects."""
    logits = maps["heatmap"]
    p = torch.sigmoid(logits)
    positive = heat.eq(1).float()
    focal = positive * (1 - p) ** 2 * F.logsigmoid(logits) + (1 - positive) * (
        1 - heat
    ) ** 4 * p**2 * F.logsigmoid(-logits)
    objects = centres.sum().clamp(min=1)
    weight = torch.tensor([0.1, 0.1, 1.0, 1.0], device=box.device)[None, :, None, None]
    regression = ((maps["box"] - box).abs() * weight * centres[:, None].float()).sum()
    return (regression - focal.sum()) / objects


def _matches(
    detections: Sequence[dict[str, torch.Tensor]],
    targets: Sequence[dict[str, torch.Tensor]],
    iou_threshold: float,
) -> list[tuple[float, int, bool]]:
    """(score, label, true positive) of every detection, matched as in PASCAL VOC: in descending score order, a
    detection is a true positive when the ground-truth box of its class that it overlaps most (IoU at least
    ``iou_threshold``) is not taken yet by a higher-scoring one."""
    found = []
    for detection, target in zip(detections, targets, strict=True):
        ious = box_iou(detection["boxes"].detach().float(), target["boxes"].float())
        same = detection["labels"][:, None] == target["labels"][None, :]
        ious = torch.where(same, ious, torch.full_like(ious, -1.0))
        taken = torch.zeros(len(target["boxes"]), dtype=torch.bool)  # device-ok: host bookkeeping
        for k in torch.argsort(detection["scores"].detach(), descending=True, stable=True).tolist():
            hit = False
            if ious.shape[1]:
                best = int(ious[k].argmax())
                if ious[k, best] >= iou_threshold and not taken[best]:
                    taken[best] = hit = True
            found.append((float(detection["scores"][k]), int(detection["labels"][k]), hit))
    return found


def average_precision(scores: np.ndarray, hits: np.ndarray, positives: int) -> float:
    """The area under the precision-recall curve with precision made monotone (PASCAL VOC from 2010, COCO's
    all-point variant): ``scores`` and ``hits`` (true positive or not) of one class's detections, ``positives``
    the number of its ground-truth objects. NaN when there are none."""
    if positives == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    hit = np.asarray(hits, dtype=float)[order]
    true = np.cumsum(hit)
    recall = np.concatenate([[0.0], true / positives, [1.0]])
    precision = np.concatenate([[1.0], true / np.arange(1, len(hit) + 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def detection_quality(
    detections: Sequence[dict[str, torch.Tensor]],
    targets: Sequence[dict[str, torch.Tensor]],
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
    num_classes: int = len(CLASSES),
) -> dict[str, float]:
    """``map``: the mean over classes (those with objects) of the average precision at ``iou_threshold`` (a
    detection counts when its class is right and its box overlaps an unclaimed object that much); ``recall``
    and ``precision`` of the detections scoring at least ``score_threshold``, matched the same way."""
    found = _matches(detections, targets, iou_threshold)
    scores = np.array([f[0] for f in found], dtype=float)
    labels = np.array([f[1] for f in found], dtype=int)
    hits = np.array([f[2] for f in found], dtype=bool)
    truth = torch.cat([t["labels"] for t in targets]).cpu().numpy() if targets else np.zeros(0, int)
    per_class = [
        average_precision(scores[labels == c], hits[labels == c], int(np.sum(truth == c)))
        for c in range(num_classes)
    ]
    confident = scores >= score_threshold
    return {
        "map": float(np.nanmean(per_class)) if not np.all(np.isnan(per_class)) else float("nan"),
        "ap_per_class": [round(v, 5) for v in per_class],
        "recall": float(hits[confident].sum() / max(len(truth), 1)),
        "precision": float(hits[confident].sum() / max(int(confident.sum()), 1)),
        "objects": int(len(truth)),
    }


def segmentation_quality(
    predicted: np.ndarray, truth: np.ndarray, num_classes: int = len(SEGMENTATION_CLASSES)
) -> dict:
    """``miou``: the mean over classes of the intersection over union of predicted and true label maps (N,H,W),
    each pooled over all images (a class absent from both is left out); ``pixel_accuracy``; ``iou_per_class``."""
    predicted, truth = np.asarray(predicted).ravel(), np.asarray(truth).ravel()
    confusion = np.bincount(truth * num_classes + predicted, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )
    union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
    iou = np.where(union > 0, np.diag(confusion) / np.maximum(union, 1), np.nan)
    return {
        "miou": float(np.nanmean(iou)),
        "pixel_accuracy": float(np.trace(confusion) / max(confusion.sum(), 1)),
        "iou_per_class": [round(float(v), 5) for v in iou],
    }


@torch.no_grad()
def detect(model: ShapesDetector, images: np.ndarray, batch_size: int = 128) -> list[dict[str, torch.Tensor]]:
    """The eval-mode detections of RGB uint8 (N,H,W,3) images (the model's modes restored after)."""
    x = torch.from_numpy(images).to(module_device(model)).permute(0, 3, 1, 2).float() / 255.0
    with evaluation_mode(model):
        return [d for i in range(0, len(x), batch_size) for d in model(x[i : i + batch_size])]


@torch.no_grad()
def segment(model: ShapesSegmenter, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """The predicted label maps int64 (N,H,W) of RGB uint8 (N,H,W,3) images (eval mode, the model's modes
    restored after)."""
    x = normalised(images).to(module_device(model))
    with evaluation_mode(model):
        return (
            torch.cat([model(x[i : i + batch_size])["out"].argmax(1) for i in range(0, len(x), batch_size)])
            .cpu()
            .numpy()
        )


def training_record(
    quality: dict,
    losses: Sequence[float],
    start: float,
    generated: float,
    trained: float,
    classes: Sequence[str],
) -> dict:
    """What a synthetic model's info records of its training: its test ``quality``, the epochs' losses, the
    seconds spent drawing the data (``generated``), training (from ``start`` to ``trained``, less the data) and
    testing (until now), the threads and the classes."""
    return {
        **quality,
        "losses": [round(v, 5) for v in losses],
        "data_seconds": round(generated, 2),
        "train_seconds": round(trained - start - generated, 2),
        "test_seconds": round(time.perf_counter() - trained, 2),
        "threads": torch.get_num_threads(),
        "classes": list(classes),
    }


def load_shapes_detector(
    settings: SceneSettings = SceneSettings(),  # noqa: B008 (frozen)
    train_images: int = 2500,
    test_images: int = 300,
    epochs: int = 8,
    cache_dir: str | Path | None = None,
    retrain: bool = False,
) -> tuple[ShapesDetector, dict]:
    """The trained :class:`ShapesDetector` for ``settings`` (from the cache, or trained now on ``train_images``
    scenes of the 'train' split and tested on the first ``test_images`` of 'test'). Info: ``map`` (at IoU 0.5),
    ``recall`` and ``precision`` (score at least 0.5, IoU 0.5, right class), seconds, losses."""
    key = {**asdict(settings), "train_images": train_images, "test_images": test_images, "epochs": epochs}

    def train(model: ShapesDetector) -> dict:
        start = time.perf_counter()
        train_set = make_scenes(settings, "train", train_images)
        test_set = make_scenes(settings, "test", test_images)
        x = torch.from_numpy(train_set.images).permute(0, 3, 1, 2).float() / 255.0  # device-ok: training data, on the host
        targets = detection_targets(train_set.targets(), x.shape[-2:], len(CLASSES), model.stride)
        generated = time.perf_counter() - start
        with torch.autograd.set_grad_enabled(True):
            losses = train_model(
                model, x, targets, detection_loss, epochs, settings.seed, learning_rate=4e-3, batch_size=32
            )
        trained = time.perf_counter()
        quality = detection_quality(detect(model, test_set.images), test_set.targets())
        return training_record(quality, losses, start, generated, trained, CLASSES)

    model, info = load_or_train("shapes_detector", key, ShapesDetector, train, cache_dir, retrain)
    return model, info


def load_shapes_segmenter(
    settings: SceneSettings = SceneSettings(),  # noqa: B008 (frozen)
    train_images: int = 1500,
    test_images: int = 300,
    epochs: int = 7,
    cache_dir: str | Path | None = None,
    retrain: bool = False,
) -> tuple[ShapesSegmenter, dict]:
    """The trained :class:`ShapesSegmenter` for ``settings`` (from the cache, or trained now on ``train_images``
    scenes of the 'train' split and tested on the first ``test_images`` of 'test'). Info: ``miou`` over the 5
    classes, ``pixel_accuracy``, per-class IoU, seconds, losses."""
    key = {**asdict(settings), "train_images": train_images, "test_images": test_images, "epochs": epochs}

    def train(model: ShapesSegmenter) -> dict:
        start = time.perf_counter()
        train_set = make_scenes(settings, "train", train_images)
        test_set = make_scenes(settings, "test", test_images)
        x, y = normalised(train_set.images), torch.from_numpy(train_set.label_maps)  # device-ok: training data, on the host
        weight = torch.tensor([BACKGROUND_WEIGHT] + [1.0] * len(CLASSES))  # device-ok: training data, on the host
        generated = time.perf_counter() - start
        with torch.autograd.set_grad_enabled(True):
            losses = train_model(
                model,
                x,
                [y],
                lambda output, labels: F.cross_entropy(output["out"], labels, weight=weight),
                epochs,
                settings.seed,
                learning_rate=5e-3,
                batch_size=32,
            )
        trained = time.perf_counter()
        quality = segmentation_quality(segment(model, test_set.images), test_set.label_maps)
        return training_record(quality, losses, start, generated, trained, SEGMENTATION_CLASSES)

    model, info = load_or_train("shapes_segmenter", key, ShapesSegmenter, train, cache_dir, retrain)
    return model, info
