"""The scene detector and segmenter: torchvision's output formats, gradients from a box's score to the input,
the training targets and quality measures by hand, and trained models that find the objects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnxai.synthetic.scene_models import (
    DETECTOR_CAM_LAYER,
    SEGMENTER_CAM_LAYER,
    ShapesDetector,
    ShapesSegmenter,
    average_precision,
    detect,
    detection_quality,
    detection_targets,
    load_shapes_detector,
    load_shapes_segmenter,
    segment,
    segmentation_quality,
)
from cnnxai.synthetic.scenes import SceneSettings, make_scenes
from cnnxai.synthetic.shapes_model import normalised

SMALL = SceneSettings(size=64, object_size=(14, 22), distractors=(1, 2))  # the tests' quick configuration
SMALL_DETECTOR = {"train_images": 1500, "test_images": 100, "epochs": 8}
SMALL_SEGMENTER = {"train_images": 1200, "test_images": 100, "epochs": 8}


def scene_batch(count: int = 2, size: int = 64) -> torch.Tensor:
    images = make_scenes(SceneSettings(size=size), "test", count).images
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def untrained_detector() -> ShapesDetector:
    torch.manual_seed(0)
    return ShapesDetector().eval()


def test_the_detector_returns_torchvision_s_detections():
    model = untrained_detector()
    x = scene_batch(3)
    with torch.no_grad():
        detections = model(x)
    assert isinstance(detections, list) and len(detections) == 3
    for d in detections:
        assert set(d) == {"boxes", "scores", "labels"}
        n = len(d["scores"])
        assert (
            0 < n <= model.max_detections
        )  # the untrained heatmap starts near 0.1, above the 0.05 threshold
        assert d["boxes"].shape == (n, 4) and d["boxes"].dtype == torch.float32
        assert d["labels"].dtype == torch.int64 and d["labels"].min() >= 0 and d["labels"].max() <= 3
        assert torch.all(d["scores"][:-1] >= d["scores"][1:]) and torch.all(
            d["scores"] > model.score_threshold
        )
        assert torch.all(d["boxes"][:, :2] <= d["boxes"][:, 2:])
        assert d["boxes"].min() >= 0 and d["boxes"].max() <= 64


def test_the_detector_keeps_at_most_max_detections_above_the_threshold():
    model = untrained_detector()
    model.max_detections = 3
    with torch.no_grad():
        assert all(len(d["scores"]) <= 3 for d in model(scene_batch(2)))
    model.max_detections, model.score_threshold = 20, 1.0
    with torch.no_grad():
        assert all(len(d["scores"]) == 0 and d["boxes"].shape == (0, 4) for d in model(scene_batch(2)))


def test_a_box_s_score_and_coordinates_are_differentiable_in_the_input():
    model = untrained_detector()
    x = scene_batch(1).requires_grad_(True)
    detections = model(x)
    detections[0]["scores"][0].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    x.grad = None
    model(x)[0]["boxes"][0].sum().backward()
    assert x.grad.abs().sum() > 0


def test_the_detector_s_train_mode_returns_its_maps_and_its_cam_layer_is_the_last_feature_map():
    model = untrained_detector().train()
    maps = model(scene_batch(2))
    assert maps["heatmap"].shape == (2, 4, 16, 16) and maps["box"].shape == (2, 4, 16, 16)
    seen = {}
    layer = model.eval().get_submodule(DETECTOR_CAM_LAYER)
    handle = layer.register_forward_hook(lambda _m, _i, output: seen.update(shape=output.shape))
    with torch.no_grad():
        model(scene_batch(2))
    handle.remove()
    assert seen["shape"][0] == 2 and seen["shape"][2:] == (16, 16)


def test_the_segmenter_returns_torchvision_s_output():
    torch.manual_seed(0)
    model = ShapesSegmenter().eval()
    x = normalised(make_scenes(SceneSettings(size=64), "test", 2).images)
    with torch.no_grad():
        output = model(x)
    assert set(output) == {"out"} and output["out"].shape == (2, 5, 64, 64)
    assert model.get_submodule(SEGMENTER_CAM_LAYER) is not None


def test_detection_targets_put_a_peak_and_the_box_at_the_centre_cell():
    target = {"boxes": torch.tensor([[10.0, 20.0, 30.0, 36.0]]), "labels": torch.tensor([2])}
    heat, box, centres = detection_targets([target], (64, 64))
    assert heat.shape == (1, 4, 16, 16) and box.shape == (1, 4, 16, 16)
    assert torch.nonzero(centres[0]).tolist() == [[7, 5]]  # centre (20, 28) px: cell row 7, column 5
    assert heat[0, 2, 7, 5] == 1 and heat[0, 2].eq(1).sum() == 1 and heat[[0], [0, 1, 3]].max() == 0
    assert 0 < heat[0, 2, 7, 6] < 1
    torch.testing.assert_close(box[0, :, 7, 5], torch.tensor([5.0, 4.0, 0.0, 0.0]))


def test_average_precision_by_hand():
    # three objects; detections by score: hit, miss, hit, (one object never found): precision 1, 1/2, 2/3
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 3) == pytest.approx(
        1 / 3 * 1 + 1 / 3 * 2 / 3
    )
    assert average_precision(np.array([0.9, 0.5]), np.array([True, True]), 2) == 1.0
    assert np.isnan(average_precision(np.zeros(0), np.zeros(0, bool), 0))


def test_detection_quality_matches_class_and_overlap_once():
    truth = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([0, 1])}]
    found = [
        {
            "boxes": torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]),
            "scores": torch.tensor([0.9, 0.8, 0.7, 0.6]),
            "labels": torch.tensor([0, 0, 2, 1]),  # a duplicate, a wrong class, a box on nothing
        }
    ]
    quality = detection_quality(found, truth)
    assert quality["recall"] == 0.5 and quality["precision"] == 0.25 and quality["objects"] == 2
    assert quality["ap_per_class"][0] == 1.0 and quality["ap_per_class"][1] == 0.0
    assert np.isnan(quality["ap_per_class"][2])  # no triangle in the truth
    assert quality["map"] == 0.5


def test_segmentation_quality_by_hand():
    truth = np.array([[[0, 0, 1, 1]]])
    predicted = np.array([[[0, 1, 1, 1]]])
    quality = segmentation_quality(predicted, truth, num_classes=3)  # class 2 absent from both: left out
    assert quality["pixel_accuracy"] == 0.75
    assert quality["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("scene_models")


@pytest.fixture(scope="module")
def small_detector(cache_dir):
    return load_shapes_detector(SMALL, cache_dir=cache_dir, **SMALL_DETECTOR)


@pytest.fixture(scope="module")
def small_segmenter(cache_dir):
    return load_shapes_segmenter(SMALL, cache_dir=cache_dir, **SMALL_SEGMENTER)


def test_a_small_trained_detector_finds_the_objects(small_detector):
    model, info = small_detector
    assert not info["loaded_from_cache"]
    assert info["map"] >= 0.9 and info["recall"] >= 0.8, info
    scenes = make_scenes(SMALL, "test", 20, start=500)  # beyond the scenes its info was measured on
    quality = detection_quality(detect(model, scenes.images), scenes.targets())
    assert quality["map"] >= 0.85, quality


def test_a_small_trained_segmenter_labels_the_pixels(small_segmenter):
    model, info = small_segmenter
    assert not info["loaded_from_cache"]
    assert info["miou"] >= 0.9 and info["pixel_accuracy"] >= 0.99, info
    scenes = make_scenes(SMALL, "test", 20, start=500)
    quality = segmentation_quality(segment(model, scenes.images), scenes.label_maps)
    assert quality["miou"] >= 0.85, quality


def test_trained_models_come_back_from_the_cache(small_detector, small_segmenter, cache_dir):
    for load, (model, info), size in [
        (load_shapes_detector, small_detector, SMALL_DETECTOR),
        (load_shapes_segmenter, small_segmenter, SMALL_SEGMENTER),
    ]:
        again, again_info = load(SMALL, cache_dir=cache_dir, **size)
        assert again_info["loaded_from_cache"] and again_info["cache_file"] == info["cache_file"]
        for name, tensor in model.state_dict().items():
            torch.testing.assert_close(again.state_dict()[name], tensor)


@pytest.mark.slow
def test_the_default_models_reach_their_quality(tmp_path):
    """The default settings, trained from scratch (minutes on 2 CPU cores: run with --runslow)."""
    _, detector = load_shapes_detector(cache_dir=tmp_path)
    assert detector["map"] >= 0.95 and detector["recall"] >= 0.9 and detector["precision"] >= 0.9, detector
    _, segmenter = load_shapes_segmenter(cache_dir=tmp_path)
    assert segmenter["miou"] >= 0.8 and segmenter["pixel_accuracy"] >= 0.98, segmenter
