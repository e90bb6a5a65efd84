"""With a uniform prior our surrogate is lime 0.2.0.1's LimeBase, to 1e-8."""

from __future__ import annotations

import numpy as np
import pytest
from lime.lime_base import LimeBase
from lime.lime_image import ImageExplanation

from lime_ext import CamLimeExplainer, LimeSettings, TorchClassifier, exponential_kernel
from lime_ext.surrogate import cosine_distances_to_first
from tests.helpers import make_tiny_cnn, small_photo


@pytest.fixture(scope="module")
def neighbourhood():
    explainer = CamLimeExplainer(TorchClassifier(make_tiny_cnn()), LimeSettings(300, "slic"), batch_size=64)
    return explainer.sample(small_photo(), seed=3)


def lime_fit(nb, label, num_features, feature_selection):
    distances = cosine_distances_to_first(nb.masks)
    base = LimeBase(lambda d: np.sqrt(np.exp(-(d**2) / 0.25**2)), random_state=np.random.RandomState(0))
    return base.explain_instance_with_data(
        nb.masks, nb.predictions, distances, label, num_features, feature_selection=feature_selection
    )


@pytest.mark.parametrize(
    "num_features,feature_selection",
    [
        (100000, "auto"),
        (5, "auto"),
        (8, "highest_weights"),
        (6, "lasso_path"),
        (100000, "none"),
        (3, "forward_selection"),
    ],
)
def test_plain_lime_equals_limebase(neighbourhood, num_features, feature_selection):
    label = neighbourhood.top_labels(1)[0]
    ours = neighbourhood.fit(
        labels=[label], cam_mode="none", num_features=num_features, feature_selection=feature_selection
    )
    intercept, exp, score, local_pred = lime_fit(neighbourhood, label, num_features, feature_selection)
    mine = ours.labels[label]
    assert mine.intercept == pytest.approx(intercept, abs=1e-8)
    assert mine.score == pytest.approx(score, abs=1e-8)
    assert mine.local_pred == pytest.approx(float(local_pred[0]), abs=1e-8)
    assert [j for j, _ in mine.local_exp] == [int(j) for j, _ in exp]
    np.testing.assert_allclose([w for _, w in mine.local_exp], [w for _, w in exp], atol=1e-8, rtol=0)
    np.testing.assert_array_equal(mine.weights, mine.attributions)  # b = w for plain LIME


def test_uniform_prior_is_plain_lime_in_every_mode(neighbourhood):
    label = neighbourhood.top_labels(1)[0]
    ones = np.ones(neighbourhood.num_segments)
    fits = {
        mode: neighbourhood.fit(labels=[label], prior=ones, cam_mode=mode).labels[label]
        for mode in ("feature", "importance", "none")
    }
    for mode in ("feature", "importance"):
        np.testing.assert_allclose(fits[mode].weights, fits["none"].weights, atol=1e-12)
        np.testing.assert_allclose(fits[mode].attributions, fits["none"].attributions, atol=1e-12)
        assert fits[mode].score == pytest.approx(fits["none"].score, abs=1e-12)
        np.testing.assert_array_equal(fits[mode].ranking, fits["none"].ranking)


def test_top_labels_follow_lime_order(neighbourhood):
    top = neighbourhood.top_labels(3)
    assert top == list(np.argsort(neighbourhood.predictions[0])[::-1][:3])
    exp = neighbourhood.fit(top_labels=3, cam_mode="none")
    assert exp.top_labels == top and set(exp.labels) == set(top)


@pytest.mark.parametrize(
    "positive_only,negative_only,hide_rest,num_features",
    [(True, False, False, 5), (False, True, True, 4), (False, False, False, 6)],
)
def test_get_image_and_mask_matches_lime(
    neighbourhood, positive_only, negative_only, hide_rest, num_features
):
    exp = neighbourhood.fit(top_labels=1, cam_mode="none")
    label = exp.top_labels[0]
    reference = ImageExplanation(exp.image, exp.segments)
    reference.local_exp = exp.local_exp
    expected = reference.get_image_and_mask(label, positive_only, negative_only, hide_rest, num_features)
    got = exp.get_image_and_mask(label, positive_only, negative_only, hide_rest, num_features)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_sample_weights_are_limes_kernel(neighbourhood):
    z = neighbourhood.masks.astype(float)
    cos = 1 - (z @ z[0]) / (np.linalg.norm(z, axis=1) * np.linalg.norm(z[0]) + 1e-300)
    cos[np.linalg.norm(z, axis=1) == 0] = 1.0
    np.testing.assert_allclose(neighbourhood.sample_weights, exponential_kernel(cos), atol=1e-12)
    assert isinstance(neighbourhood.predictions, np.ndarray) and neighbourhood.predictions.dtype == np.float32
