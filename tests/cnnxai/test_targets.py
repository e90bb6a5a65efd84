"""Targets by hand: the detection similarity, the region score, the input spaces of TargetScore, and explanations
of a box and of a region on models built so that the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnxai.explainers import explain, explain_image
from cnnxai.targets import (
    ClassifierOutputTarget,
    DetectionBoxTarget,
    SegmentationTarget,
    TargetScore,
    box_iou,
)
from cnnxai.tasks.explain import select_detection, select_region
from lime_ext import IMAGENET_MEAN, IMAGENET_STD

FIXED = {
    "boxes": torch.tensor([[0.0, 0, 10, 10], [5, 5, 15, 15], [0, 0, 10, 10]]),
    "labels": torch.tensor([1, 1, 2]),
    "scores": torch.tensor([0.9, 0.8, 0.95]),
}


@pytest.mark.parametrize(
    ("box", "label", "expected"),
    [
        ((0, 0, 10, 10), 1, 0.9),  # itself: IoU 1 x 0.9 beats 25/175 x 0.8
        ((5, 5, 15, 15), 1, 0.8),  # itself: 0.8 beats 25/175 x 0.9
        ((0, 0, 10, 10), 3, 0.0),  # no detection of class 3
        ((2, 0, 12, 10), 2, 80 / 120 * 0.95),  # shifted by 2: IoU 80/120
        ((20, 20, 30, 30), 1, 0.0),  # no overlap
    ],
)
def test_detection_similarity_is_best_iou_times_score_of_the_class(box, label, expected):
    assert float(DetectionBoxTarget(box, label)(FIXED)) == pytest.approx(expected, abs=1e-6)


def test_detection_similarity_backpropagates_to_the_matched_score_and_box():
    scores = FIXED["scores"].clone().requires_grad_(True)
    boxes = FIXED["boxes"].clone().requires_grad_(True)
    DetectionBoxTarget((1, 0, 11, 10), 1)(
        {"boxes": boxes, "labels": FIXED["labels"], "scores": scores}
    ).backward()
    assert scores.grad[0] > 0 and scores.grad[1] == 0 and scores.grad[2] == 0
    assert boxes.grad[0].abs().sum() > 0
    boxes.grad = None
    detached = DetectionBoxTarget((1, 0, 11, 10), 1, box_gradient=False)
    detached({"boxes": boxes, "labels": FIXED["labels"], "scores": scores}).backward()
    assert boxes.grad is None


def test_box_iou_equals_torchvision():
    from torchvision.ops import box_iou as reference

    boxes = torch.tensor([[0.0, 0, 10, 10], [3, 4, 20, 9], [50, 50, 60, 61]])
    box = torch.tensor([2.0, 1, 12, 14])
    assert torch.allclose(box_iou(boxes, box), reference(boxes, box[None])[:, 0])


def test_region_score_is_the_mean_class_probability_over_the_mask():
    logits = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    mask = np.zeros((4, 5), dtype=bool)
    mask[1:3, 2:5] = True
    probability = torch.softmax(logits, 0)[2].numpy()
    assert float(SegmentationTarget(2, mask)(logits)) == pytest.approx(probability[mask].mean(), rel=1e-6)
    assert float(SegmentationTarget(2, mask, "sum")(logits)) == pytest.approx(
        probability[mask].sum(), rel=1e-6
    )
    with pytest.raises(ValueError, match="empty"):
        SegmentationTarget(0, np.zeros((4, 5), dtype=bool))


def test_classifier_target_picks_the_class():
    assert float(ClassifierOutputTarget(2)(torch.tensor([0.1, 0.2, 0.7]))) == pytest.approx(0.7)


class BoxDetector(nn.Module):
    """Two fixed boxes; box k's score is the sigmoid of the mean of a 1x1 convolution (a brightness detector)
    inside box k only, so the evidence for each box lies inside it. Input [0,1] (B,3,H,W)."""

    BOXES = ((4.0, 4.0, 28.0, 28.0), (36.0, 36.0, 60.0, 60.0))

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 4, 1)
        with torch.no_grad():
            self.features.weight.fill_(1.0)
            self.features.bias.fill_(-1.5)

    def forward(self, images):
        feature = torch.relu(self.features(images))
        out = []
        for b in range(len(images)):
            scores = torch.stack(
                [torch.sigmoid(feature[b, :, int(y1) : int(y2), int(x1) : int(x2)].mean() * 4 - 1)
                 for x1, y1, x2, y2 in self.BOXES]
            )  # fmt: skip
            out.append({"boxes": torch.tensor(self.BOXES), "labels": torch.tensor([0, 1]), "scores": scores})
        return out


def bright_squares() -> np.ndarray:
    image = np.full((64, 64, 3), 30, dtype=np.uint8)
    image[8:24, 8:24] = 250
    image[40:56, 40:56] = 250
    return image


def test_target_score_feeds_the_task_model_its_own_input_space():
    image = bright_squares()
    unit = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    detector = BoxDetector()
    target = DetectionBoxTarget(BoxDetector.BOXES[0], 0)
    wrapped = TargetScore(detector, target, "unit")
    expected = float(target(detector(unit)[0]).detach())
    assert float(wrapped((unit - mean) / std)[0, 0].detach()) == pytest.approx(expected, abs=1e-6)
    copy = TargetScore(nn.Identity(), SegmentationTarget(0, np.ones((64, 64), dtype=bool)), "imagenet")
    assert copy((unit - mean) / std).shape == (1, 1)
    with pytest.raises(ValueError, match="input_space"):
        TargetScore(detector, target, "bgr")


@pytest.mark.parametrize("method", ["gradlime", "lime", "rise", "occlusion"])
def test_the_explanation_of_a_box_lands_inside_it(method):
    """(Grad-CAM is not among them: it pools the box's gradient over the whole map, so the other square, with the
    same features, is as hot: the reason its map alone cannot tell two such objects apart.)"""
    image = bright_squares()
    detector = BoxDetector()
    selection = select_detection(detector(torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255)[0],
                                 ["a", "b"], (64, 64), box_index=None, threshold=0.5)  # fmt: skip
    assert selection.box == BoxDetector.BOXES[0]  # equal scores: the first, by a stable sort
    wrapped = TargetScore(detector, selection.target, "unit")
    options = {"gradlime": {"layers": ["task.features"], "num_samples": 200, "segmenter": "slic"},
               "lime": {"num_samples": 200, "segmenter": "slic"}, "occlusion": {"window": 8, "stride": 4},
               "rise": {"masks": 2000}}[method]  # fmt: skip
    attribution = explain(method, wrapped, image, 0, seed=0, **options).map
    inside, other = np.zeros((64, 64), dtype=bool), np.zeros((64, 64), dtype=bool)
    x1, y1, x2, y2 = (int(v) for v in selection.box)
    inside[y1:y2, x1:x2] = True
    x1, y1, x2, y2 = (int(v) for v in BoxDetector.BOXES[1])
    other[y1:y2, x1:x2] = True
    peak = np.unravel_index(np.argmax(attribution), attribution.shape)
    assert inside[peak]  # the pointing game
    spread = attribution.max() - attribution.min()
    assert attribution[inside].mean() - attribution[other].mean() > 0.2 * spread


def test_gradlime_of_a_region_on_a_channel_copying_segmenter():
    """Logits = 10 x the normalised colour channels: the red region's score depends on red pixels only."""
    image = np.zeros((48, 48, 3), dtype=np.uint8)
    image[8:24, 8:40, 0] = 255  # a red band
    image[30:44, 10:30, 2] = 255  # a blue patch
    copy = nn.Sequential(nn.Conv2d(3, 3, 1))
    with torch.no_grad():
        copy[0].weight.copy_(torch.eye(3)[:, :, None, None] * 10)
        copy[0].bias.zero_()
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    logits = copy((x - mean) / std)[0]
    selection = select_region(logits, ["red", "green", "blue"], 0)
    assert selection.mask[8:24, 8:40].all()
    wrapped = TargetScore(copy, selection.target, "imagenet")
    result = explain_image("gradlime", wrapped, image, 0, seed=0, num_samples=150, segmenter="slic",
                           layers=["task.0"])  # fmt: skip
    attribution = result.ours.attribution_map(0)
    positive = np.clip(attribution, 0, None)
    assert positive[8:24, 8:40].sum() > 0.8 * positive.sum()
    assert float(result.probabilities[0]) == pytest.approx(selection.score, rel=1e-5)


def test_pytorch_grad_cam_targets_work_as_they_are(tiny_cnn):
    """grad-cam's target objects are callables on one image's output too: TargetScore takes them unchanged."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget as GradCamClassifierTarget
    from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget, SemanticSegmentationTarget

    image = bright_squares()
    unit = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    normalised = (unit - mean) / std
    detector = BoxDetector()
    box_target = FasterRCNNBoxScoreTarget([0], [np.array(BoxDetector.BOXES[0])])
    expected = 1.0 + float(detector(unit)[0]["scores"][0].detach())  # grad-cam's score: IoU + detection score
    wrapped = TargetScore(detector, box_target, "unit")
    assert float(wrapped(normalised)[0, 0].detach()) == pytest.approx(expected, rel=1e-6)
    assert explain(
        "gradlime", wrapped, image, 0, num_samples=30, segmenter="slic", layers=["task.features"]
    ).map.shape == (64, 64)
    mask = np.zeros((64, 64), dtype=np.float32)
    mask[8:24, 8:24] = 1
    region = TargetScore(nn.Identity(), SemanticSegmentationTarget(1, mask), "imagenet")
    assert float(region(normalised)[0, 0]) == pytest.approx(float(normalised[0, 1][mask > 0].sum()), rel=1e-5)
    classifier = TargetScore(tiny_cnn, GradCamClassifierTarget(2), "imagenet")
    with torch.no_grad():
        assert float(classifier(normalised)[0, 0]) == pytest.approx(
            float(tiny_cnn(normalised)[0, 2]), rel=1e-6
        )


def test_a_target_first_used_in_a_forward_only_pass_still_backpropagates():
    """Targets keep their constants on the device once; a constant made inside inference mode (the perturbation
    forwards) must not break the CAM's backward pass through the same target afterwards."""
    box = DetectionBoxTarget((0.0, 0.0, 8.0, 8.0), 1)
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    region = SegmentationTarget(1, mask)
    boxes = torch.tensor([[0.0, 0.0, 6.0, 6.0], [1.0, 1.0, 9.0, 9.0]])
    with torch.inference_mode():
        box({"boxes": boxes, "scores": torch.tensor([0.5, 0.9]), "labels": torch.tensor([1, 1])})
        region(torch.zeros(3, 4, 4))
    scores = torch.tensor([0.5, 0.9], requires_grad=True)
    boxes = boxes.clone().requires_grad_(True)  # the boxes' regression is part of a box's CAM
    box({"boxes": boxes, "scores": scores, "labels": torch.tensor([1, 1])}).backward()
    assert scores.grad is not None and float(scores.grad.abs().sum()) > 0
    logits = torch.zeros(3, 4, 4, requires_grad=True)
    region(logits).backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0
