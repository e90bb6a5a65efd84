"""The batched perturbation engine equals a slow per-sample reference; sampling and segmentation contracts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lime_ext import (
    PerturbationEngine,
    TorchClassifier,
    hidden_image,
    relabel,
    sample_binary_masks,
    segment_image,
)
from tests.helpers import make_tiny_cnn, small_photo


def slow_reference(image, segments, classifier, masks, hidden):
    """lime's loop: copy the image per sample, paint hidden colour where the superpixel is off, predict one by one."""
    outputs, images = [], []
    for row in masks:
        temp = image.copy()
        off = np.isin(segments, np.where(row == 0)[0])
        temp[off] = hidden[off]
        images.append(temp)
        x = torch.from_numpy(temp).permute(2, 0, 1).float()[None] / 255.0
        outputs.append(classifier(x)[0].numpy())
    return np.stack(images), np.stack(outputs)


@pytest.mark.parametrize("hide_color", [0, "mean", (10, 200, 30)])
@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_batched_engine_equals_per_sample_reference(hide_color, batch_size):
    image = small_photo(32)
    segments = segment_image(image, "slic", n_segments=12)
    classifier = TorchClassifier(make_tiny_cnn())
    engine = PerturbationEngine(image, segments, classifier, hide_color=hide_color, batch_size=batch_size)
    masks = sample_binary_masks(23, engine.num_segments, np.random.default_rng(5))
    hidden = hidden_image(image, segments, hide_color)
    ref_images, ref_outputs = slow_reference(image, segments, classifier, masks, hidden)

    perturbed = engine.perturb(torch.from_numpy(masks))
    expected_inputs = classifier.prepare(torch.from_numpy(ref_images).permute(0, 3, 1, 2).float() / 255.0)
    torch.testing.assert_close(perturbed, expected_inputs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(engine.predict(masks), ref_outputs, rtol=0, atol=1e-6)


def test_mean_hide_colour_is_limes_fudged_image():
    image = small_photo(32)
    segments = segment_image(image, "slic", n_segments=10)
    fudged = image.copy()
    for x in np.unique(segments):  # lime_image's construction, uint8 truncation included
        fudged[segments == x] = (
            np.mean(image[segments == x][:, 0]),
            np.mean(image[segments == x][:, 1]),
            np.mean(image[segments == x][:, 2]),
        )
    np.testing.assert_array_equal(hidden_image(image, segments, "mean"), fudged)
    np.testing.assert_array_equal(hidden_image(image, segments, None), fudged)


def test_masks_are_binary_with_first_row_all_ones():
    masks = sample_binary_masks(500, 40, np.random.default_rng(0))
    assert masks.shape == (500, 40) and masks.dtype == np.uint8
    assert set(np.unique(masks)) == {0, 1} and masks[0].all()
    assert 0.45 < masks[1:].mean() < 0.55
    with pytest.raises(ValueError, match="at least 2"):
        sample_binary_masks(1, 40, np.random.default_rng(0))


def test_bad_engine_arguments_are_rejected():
    image = small_photo(16)
    segments = np.zeros((16, 16), dtype=np.int64)
    classifier = TorchClassifier(make_tiny_cnn())
    with pytest.raises(ValueError, match="batch size"):
        PerturbationEngine(image, segments, classifier, batch_size=0)
    with pytest.raises(ValueError, match="outside"):
        PerturbationEngine(image, segments, classifier, hide_color=300)
    with pytest.raises(ValueError, match="do not match"):
        PerturbationEngine(image, segments[:8], classifier)


def test_engine_restores_model_mode():
    model = make_tiny_cnn().train()
    image = small_photo(16)
    engine = PerturbationEngine(
        image, np.zeros((16, 16), dtype=np.int64), TorchClassifier(model), batch_size=4
    )
    out = engine.predict(np.ones((3, 1), dtype=np.uint8))
    assert model.training and all(m.training for m in model.modules())
    np.testing.assert_allclose(out[0], out[1])  # eval mode during prediction: BN uses running statistics


def test_slic_labels_are_relabelled_from_zero():
    from skimage.segmentation import slic

    image = small_photo(40)
    raw = slic(image, n_segments=20, channel_axis=-1)  # skimage's default start_label=1
    assert raw.min() == 1
    ours = segment_image(image, "slic", n_segments=20)
    assert ours.min() == 0 and ours.max() == len(np.unique(ours)) - 1
    np.testing.assert_array_equal(relabel(np.array([[5, 9], [9, 2]])), [[1, 2], [2, 0]])


@pytest.mark.parametrize("method", ["quickshift", "slic", "felzenszwalb"])
def test_segmenters_are_seeded_and_contiguous(method):
    image = small_photo(40)
    first, second = segment_image(image, method, seed=4), segment_image(image, method, seed=4)
    np.testing.assert_array_equal(first, second)
    assert np.array_equal(np.unique(first), np.arange(first.max() + 1))
    with pytest.raises(ValueError, match="unknown segmenter"):
        segment_image(image, "watershed")


def test_numpy_classifier_adapter_sees_lime_style_uint8_images():
    """A lime-style classifier_fn gets (N,H,W,3) images in 0..255 equal to lime's perturbed copies."""
    from lime_ext import NumpyClassifier

    seen = []

    def classifier_fn(images: np.ndarray) -> np.ndarray:
        seen.append(images.copy())
        means = images.reshape(len(images), -1, 3).mean(axis=1) / 255.0
        return np.concatenate([means, 1 - means], axis=1)

    image = small_photo(24)
    segments = segment_image(image, "slic", n_segments=8)
    engine = PerturbationEngine(image, segments, NumpyClassifier(classifier_fn), hide_color=0, batch_size=5)
    masks = sample_binary_masks(12, engine.num_segments, np.random.default_rng(2))
    outputs = engine.predict(masks)
    images = np.concatenate(seen)
    expected, _ = slow_reference(
        image, segments, lambda x: torch.zeros(1, 1), masks, hidden_image(image, segments, 0)
    )
    np.testing.assert_array_equal(images, expected)
    assert outputs.shape == (12, 6)
