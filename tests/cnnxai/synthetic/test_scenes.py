"""The procedural scenes: seeded per scene, boxes and label maps that agree with the objects' masks, no contact."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cnnxai.images import dilate
from cnnxai.synthetic.scenes import OBJECT_GAP, SceneSettings, draw_scene, make_scenes
from cnnxai.synthetic.shapes import SyntheticSettings, draw_image

SETTINGS = SceneSettings()


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(SETTINGS, "test", 40)


def test_a_scene_is_the_same_whatever_the_count_and_start(scenes):
    again = make_scenes(SETTINGS, "test", 5, start=7)
    np.testing.assert_array_equal(again.images, scenes.images[7:12])
    np.testing.assert_array_equal(again.label_maps, scenes.label_maps[7:12])
    np.testing.assert_array_equal(again.indices, np.arange(7, 12))
    for got, expected in zip(again.objects, scenes.objects[7:12], strict=True):
        assert [(o.label, o.box) for o in got] == [(o.label, o.box) for o in expected]
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a.mask, b.mask)


def test_splits_seeds_and_the_classification_images_draw_apart(scenes):
    train = make_scenes(SETTINGS, "train", 3)
    other_seed = make_scenes(replace(SETTINGS, seed=1), "test", 3)
    assert not np.array_equal(train.images, scenes.images[:3])
    assert not np.array_equal(other_seed.images, scenes.images[:3])
    single = draw_image(SyntheticSettings(size=SETTINGS.size), "test", 0)[0]
    assert not np.array_equal(single, scenes.images[0])


def test_the_set_holds_what_it_says(scenes):
    assert scenes.images.shape == (40, 96, 96, 3) and scenes.images.dtype == np.uint8
    assert scenes.label_maps.shape == (40, 96, 96) and scenes.label_maps.dtype == np.int64
    assert len(scenes) == 40 and scenes.split == "test"
    counts = [len(objects) for objects in scenes.objects]
    assert min(counts) >= SETTINGS.objects[0] and max(counts) <= SETTINGS.objects[1]
    assert len(set(counts)) > 1  # the count varies
    labels = {o.label for objects in scenes.objects for o in objects}
    assert labels == {0, 1, 2, 3}


def test_boxes_are_the_masks_extents_in_torchvision_s_convention(scenes):
    for objects in scenes.objects:
        for obj in objects:
            rows, cols = np.nonzero(obj.mask)
            assert obj.box == (cols.min(), rows.min(), cols.max() + 1.0, rows.max() + 1.0)
            assert all(isinstance(v, float) for v in obj.box)
            assert obj.mask.dtype == bool and obj.mask.shape == (96, 96)
            width = obj.box[2] - obj.box[0]
            assert SETTINGS.object_size[0] * 0.6 <= width <= SETTINGS.object_size[1] * 1.3


def test_label_maps_are_the_objects_masks(scenes):
    for label_map, objects in zip(scenes.label_maps, scenes.objects, strict=True):
        expected = np.zeros_like(label_map)
        for obj in objects:
            expected[obj.mask] = 1 + obj.label
        np.testing.assert_array_equal(label_map, expected)


def test_objects_touch_neither_each_other_nor_distractors(scenes):
    for image, objects in zip(scenes.images, scenes.objects, strict=True):
        for i, a in enumerate(objects):
            for b in objects[i + 1 :]:
                assert not np.any(dilate(a.mask, OBJECT_GAP) & b.mask)
        # the ring just around each object is background: darker than the object's own (bright) colour
        near = dilate(np.any([o.mask for o in objects], axis=0), 2) & ~np.any(
            [o.mask for o in objects], axis=0
        )
        assert image[near].max(axis=1).mean() < 140
        for obj in objects:
            assert image[obj.mask].max(axis=1).mean() > 180


def test_targets_are_torchvision_s_format(scenes):
    targets = scenes.targets()
    assert len(targets) == 40
    for target, objects in zip(targets, scenes.objects, strict=True):
        assert target["boxes"].shape == (len(objects), 4) and target["boxes"].dtype.is_floating_point
        assert target["labels"].tolist() == [o.label for o in objects]
        assert target["masks"].shape == (len(objects), 96, 96)


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="split"):
        draw_scene(SETTINGS, "validation", 0)
