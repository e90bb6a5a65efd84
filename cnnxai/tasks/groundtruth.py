"""Ground truth for the applications: on the synthetic scenes every object has a mask, so the explanation of the
detector's box on an object (or of the segmenter's region of a class) can be scored by whether it falls on that
object, with the localisation metrics of ``Localisation.py``.

Each explained case becomes one item of a :class:`~cnnxai.synthetic.shapes.SyntheticSet` (the scene, the
object's mask, the object's class) with its own :class:`~cnnxai.targets.TargetScore`, and the benchmark's
one loop explains and scores it (:func:`cnnxai.groundtruth.benchmark.run_localisation` with ``case_models``).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from cnnxai.synthetic.scenes import SceneSet
from cnnxai.synthetic.shapes import SyntheticSet
from cnnxai.targets import DetectionBoxTarget, SegmentationTarget, TargetScore, box_iou
from cnnxai.tasks.explain import predict

MATCH_IOU = 0.5  # a detection explains an object when it has the object's class and this IoU with its box


def detection_cases(
    detector: nn.Module, scenes: SceneSet, threshold: float = 0.5
) -> tuple[SyntheticSet, list[TargetScore]]:
    """One case per object that the detector finds (a detection of its class, score >= ``threshold``, IoU >=
    MATCH_IOU with its box): the explained box is that detection's, the evidence is the object's mask."""
    cases: list[tuple] = []  # (image, evidence, label, scene index, model)
    for image, objects, index in zip(scenes.images, scenes.objects, scenes.indices, strict=True):
        detections = predict(detector, image, "unit")
        for obj in objects:
            same = (detections["labels"] == obj.label) & (detections["scores"] >= threshold)
            if not bool(same.any()):
                continue
            boxes = detections["boxes"][same]
            ious = box_iou(boxes, boxes.new_tensor(obj.box))  # on the detections' device
            best = int(ious.argmax())
            if float(ious[best]) < MATCH_IOU:
                continue
            target = DetectionBoxTarget(tuple(float(v) for v in boxes[best]), obj.label)
            cases.append((image, obj.mask, obj.label, index, TargetScore(detector, target, "unit")))
    return _as_set(cases, scenes)


def segmentation_cases(segmenter: nn.Module, scenes: SceneSet) -> tuple[SyntheticSet, list[TargetScore]]:
    """One case per class of a scene's objects that the segmenter also predicts there: the explained region is
    the pixels it predicts as that class, the evidence the class's objects' masks."""
    cases: list[tuple] = []
    for image, objects, index in zip(scenes.images, scenes.objects, scenes.indices, strict=True):
        predicted = predict(segmenter, image, "imagenet").argmax(0).cpu().numpy()
        for label in sorted({obj.label for obj in objects}):
            region = predicted == label + 1  # class 0 is the background
            if not region.any():
                continue
            evidence = np.any([obj.mask for obj in objects if obj.label == label], axis=0)
            target = SegmentationTarget(label + 1, region)
            cases.append((image, evidence, label, index, TargetScore(segmenter, target, "imagenet")))
    return _as_set(cases, scenes)


def _as_set(cases: list[tuple], scenes: SceneSet) -> tuple[SyntheticSet, list[TargetScore]]:
    size = scenes.images.shape[1:3]
    dataset = SyntheticSet(
        images=np.stack([c[0] for c in cases]) if cases else np.zeros((0, *size, 3), np.uint8),
        masks=np.stack([c[1] for c in cases]) if cases else np.zeros((0, *size), bool),
        labels=np.array([c[2] for c in cases], dtype=np.int64),
        indices=np.array([c[3] for c in cases], dtype=np.int64),
        split=scenes.split,
    )
    return dataset, [c[4] for c in cases]
