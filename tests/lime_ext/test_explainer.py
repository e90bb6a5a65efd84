"""lime_ext.explainer: sample once, fit many; the cam modes and the legacy (N,M) resize; the same seed gives the
same explanation, call after call and process after process."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from lime_ext import CamLimeExplainer, LimeSettings, TorchClassifier, legacy_cam_matrix
from tests.helpers import ROOT, make_tiny_cnn, small_photo


@pytest.fixture(scope="module")
def neighbourhood():
    explainer = CamLimeExplainer(TorchClassifier(make_tiny_cnn()), LimeSettings(250, "slic"))
    return explainer.sample(small_photo(), seed=1)


def test_feature_mode_is_ridge_on_scaled_design_and_b_is_a_times_w(neighbourhood):
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    prior = rng.uniform(0.1, 1.0, neighbourhood.num_segments)
    label = neighbourhood.top_labels(1)[0]
    exp = neighbourhood.fit(labels=[label], prior=prior, cam_mode="feature").labels[label]
    ridge = Ridge(alpha=1.0).fit(
        neighbourhood.masks * prior,
        neighbourhood.predictions[:, label],
        sample_weight=neighbourhood.sample_weights,
    )
    np.testing.assert_allclose(exp.weights, ridge.coef_, atol=1e-10)
    np.testing.assert_allclose(exp.attributions, prior * exp.weights, atol=1e-15)
    assert list(exp.ranking) == list(np.argsort(-np.abs(exp.attributions), kind="stable"))


def test_importance_mode_fits_z_and_attributes_a_times_w(neighbourhood):
    rng = np.random.default_rng(1)
    prior = rng.uniform(0.1, 1.0, neighbourhood.num_segments)
    label = neighbourhood.top_labels(1)[0]
    plain = neighbourhood.fit(labels=[label], cam_mode="none").labels[label]
    exp = neighbourhood.fit(labels=[label], prior=prior, cam_mode="importance").labels[label]
    np.testing.assert_allclose(exp.weights, plain.weights, atol=1e-12)  # same design Z, all features kept
    np.testing.assert_allclose(exp.attributions, prior * plain.weights, atol=1e-15)


def test_non_uniform_prior_is_not_dropped_by_forward_selection(neighbourhood):
    prior = np.linspace(0.05, 1.0, neighbourhood.num_segments)
    label = neighbourhood.top_labels(1)[0]
    exp = neighbourhood.fit(labels=[label], prior=prior, cam_mode="importance", num_features=4).labels[label]
    from sklearn.linear_model import Ridge

    # 'auto' with 4 features would be forward selection; with a prior it is highest weights scored |coef * a|
    coef = (
        Ridge(alpha=0.01)
        .fit(
            neighbourhood.masks,
            neighbourhood.predictions[:, label],
            sample_weight=neighbourhood.sample_weights,
        )
        .coef_
    )
    scores = np.abs(coef * prior)
    assert set(exp.ranking) == set(np.argsort(-scores)[:4])


def test_legacy_resize_maps_samples_to_rows_and_superpixels_to_columns():
    height, width = 5, 7
    rows, cols = np.meshgrid(np.arange(height) / (height - 1), np.arange(width) / (width - 1), indexing="ij")
    cam = rows + 2 * cols  # linear, so linear interpolation reproduces it exactly
    matrix = legacy_cam_matrix(cam, 11, 4)
    expected = np.arange(11)[:, None] / 10 + 2 * np.arange(4)[None, :] / 3
    np.testing.assert_allclose(matrix, expected, atol=1e-9)


def test_legacy_mode_fits_the_rounded_product(neighbourhood):
    from sklearn.linear_model import Ridge

    cam = np.random.default_rng(2).uniform(size=(7, 7))
    label = neighbourhood.top_labels(1)[0]
    exp = neighbourhood.fit(labels=[label], cam_mode="legacy", cam_map=cam).labels[label]
    design = np.round(neighbourhood.masks * legacy_cam_matrix(cam, *neighbourhood.masks.shape), 4)
    ridge = Ridge(alpha=1.0).fit(
        design, neighbourhood.predictions[:, label], sample_weight=neighbourhood.sample_weights
    )
    np.testing.assert_allclose(exp.weights, ridge.coef_, atol=1e-10)
    np.testing.assert_array_equal(exp.attributions, exp.weights)
    with pytest.raises(ValueError, match="cam_map"):
        neighbourhood.fit(labels=[label], cam_mode="legacy")


def test_sample_once_fit_many_leaves_the_neighbourhood_unchanged(neighbourhood):
    before = (neighbourhood.masks.copy(), neighbourhood.predictions.copy())
    label = neighbourhood.top_labels(1)[0]
    first = neighbourhood.fit(labels=[label], prior=np.linspace(1, 0.2, neighbourhood.num_segments))
    for mode in ("importance", "none"):
        neighbourhood.fit(
            labels=[label], prior=np.linspace(0.2, 1, neighbourhood.num_segments), cam_mode=mode
        )
    again = neighbourhood.fit(labels=[label], prior=np.linspace(1, 0.2, neighbourhood.num_segments))
    np.testing.assert_array_equal(first.labels[label].attributions, again.labels[label].attributions)
    np.testing.assert_array_equal(before[0], neighbourhood.masks)
    np.testing.assert_array_equal(before[1], neighbourhood.predictions)


def test_attribution_map_paints_segments_and_keeps_top_k(neighbourhood):
    exp = neighbourhood.fit(top_labels=1, cam_mode="none")
    label_exp = exp.labels[exp.top_labels[0]]
    full = exp.attribution_map()
    assert full.dtype == np.float32 and full.shape == exp.segments.shape
    for j in range(exp.num_segments):
        np.testing.assert_array_equal(
            np.unique(full[exp.segments == j]), [np.float32(label_exp.attributions[j])]
        )
    top3 = exp.attribution_map(top_k=3)
    kept = set(np.unique(exp.segments[top3 != 0]))
    assert kept == set(label_exp.ranking[:3])


def test_bad_prior_and_mode_are_rejected(neighbourhood):
    label = neighbourhood.top_labels(1)[0]
    with pytest.raises(ValueError, match="superpixels"):
        neighbourhood.fit(labels=[label], prior=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        neighbourhood.fit(labels=[label], prior=-np.ones(neighbourhood.num_segments))
    with pytest.raises(ValueError, match="cam_mode"):
        neighbourhood.fit(labels=[label], cam_mode="paper")
    with pytest.raises(ValueError, match="out of range"):
        neighbourhood.fit(labels=[99])


SCRIPT = """
import hashlib
from lime_ext import CamLimeExplainer, LimeSettings, TorchClassifier
from tests.helpers import make_tiny_cnn, small_photo
exp = CamLimeExplainer(TorchClassifier(make_tiny_cnn()), LimeSettings(120)).explain(small_photo(), seed=11, cam_mode="none")
label = exp.labels[exp.top_labels[0]]
print(hashlib.sha256(exp.segments.tobytes() + label.weights.tobytes() + label.attributions.tobytes()).hexdigest())
"""


def digest(explainer, seed):
    exp = explainer.explain(small_photo(), seed=seed, cam_mode="none")
    label = exp.labels[exp.top_labels[0]]
    return hashlib.sha256(
        exp.segments.tobytes() + label.weights.tobytes() + label.attributions.tobytes()
    ).hexdigest()


def test_same_seed_same_explanation_on_one_explainer_object():
    explainer = CamLimeExplainer(TorchClassifier(make_tiny_cnn()), LimeSettings(120))
    first, second = explainer.sample(small_photo(), seed=7), explainer.sample(small_photo(), seed=7)
    np.testing.assert_array_equal(first.segments, second.segments)
    np.testing.assert_array_equal(first.masks, second.masks)
    np.testing.assert_array_equal(first.predictions, second.predictions)
    assert digest(explainer, 7) == digest(explainer, 7)
    assert not np.array_equal(first.masks, explainer.sample(small_photo(), seed=8).masks)


def test_same_seed_same_explanation_across_processes():
    explainer = CamLimeExplainer(TorchClassifier(make_tiny_cnn()), LimeSettings(120))
    here = digest(explainer, 11)
    outputs = {
        subprocess.run(
            [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert outputs == {here}
