"""num_samples='auto': lazily drawn neighbourhoods, the covariance of the attributions, the stopping rule."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from lime_ext import CamLimeExplainer, LimeSettings, TorchClassifier
from lime_ext.adaptive import (
    SETTLED_JACCARD,
    expected_top_k_jaccard,
    ridge_covariance,
    rounds,
    sample_until_settled,
)
from tests.helpers import make_tiny_cnn, small_photo


@pytest.fixture(scope="module")
def explainer():
    return CamLimeExplainer(TorchClassifier(make_tiny_cnn()), LimeSettings(120, "slic"), batch_size=16)


def test_a_smaller_neighbourhood_is_the_first_rows_of_a_larger_one(explainer):
    image = small_photo(48)
    sampler = explainer.sampler(image, seed=4)
    small = sampler.neighbourhood(30)
    assert sampler.predicted == 30
    large = sampler.neighbourhood(120)
    assert sampler.predicted == 120  # only the 90 new rows were predicted
    at_once = explainer.sample(image, seed=4)
    np.testing.assert_array_equal(large.masks, at_once.masks)
    np.testing.assert_array_equal(small.masks, at_once.masks[:30])
    np.testing.assert_allclose(large.predictions, at_once.predictions, rtol=1e-5, atol=1e-6)
    again = sampler.neighbourhood(60)  # already predicted: nothing new
    assert sampler.predicted == 120 and again.predictions.shape[0] == 60


def test_rounds_grow_geometrically_to_the_cap():
    assert rounds(4000) == [100, 150, 225, 338, 507, 761, 1142, 1713, 2570, 3855, 4000]
    assert rounds(60) == [60] and rounds(150) == [100, 150]


def test_expected_jaccard_is_one_for_a_clear_top_k_and_lower_for_a_tie():
    clear = np.array([10.0, 9, 8, 7, 6, 0, 0, 0])
    assert expected_top_k_jaccard(clear, np.eye(8) * 1e-4, 5) == 1.0
    tied = np.array([10.0, 9, 8, 7, 5, 5, 0, 0])  # 5th and 6th tied: half the draws swap them
    value = expected_top_k_jaccard(tied, np.eye(8) * 1e-2, 5)
    assert 0.75 < value < 0.92  # 0.5 * 1 + 0.5 * 4/6 = 0.83
    noisy = expected_top_k_jaccard(tied, np.eye(8) * 100.0, 5)
    assert noisy < value
    assert expected_top_k_jaccard(tied, np.eye(8), 8) == 1.0  # nothing to choose


def test_ridge_covariance_matches_the_spread_of_refits():
    rng = np.random.default_rng(0)
    design = rng.integers(0, 2, size=(300, 3)).astype(float)
    weights = rng.uniform(0.2, 1.0, 300)
    coef_true = np.array([1.0, -0.5, 0.25])
    fits, covariances = [], []
    for _ in range(300):
        noise = rng.normal(0, 0.3 + 0.5 * design[:, 0])  # heteroskedastic
        target = design @ coef_true + 0.1 + noise
        model = Ridge(alpha=1.0).fit(design, target, sample_weight=weights)
        fits.append(model.coef_)
        covariances.append(ridge_covariance(design, target, weights, model.coef_, 1.0))
    empirical = np.cov(np.array(fits).T)
    np.testing.assert_allclose(np.mean(covariances, axis=0).diagonal(), empirical.diagonal(), rtol=0.2)


def test_the_rule_stops_at_the_first_settled_round_and_is_deterministic():
    calls = []

    def fit(n):
        calls.append(n)
        spread = 100.0 / n  # the fit gets steadier with n
        return n, np.array([3.0, 2.0, 1.0, 0.9, 0.0]), np.eye(5) * spread

    settled = sample_until_settled(fit, top_k=2, max_samples=4000)
    assert settled.settled and settled.samples == calls[-1] and settled.jaccard[-1] >= SETTLED_JACCARD
    assert all(j < SETTLED_JACCARD for j in settled.jaccard[:-1])
    assert sample_until_settled(fit, top_k=2, max_samples=4000) == settled
    never = sample_until_settled(lambda n: (n, np.zeros(5), np.eye(5)), 2, 300)
    assert not never.settled and never.samples == 300 and never.record["rounds"] == rounds(300)


def test_auto_explain_records_its_samples_and_equals_a_fixed_fit_at_that_size(explainer):
    image = small_photo(48)
    auto = CamLimeExplainer(
        explainer.classifier, LimeSettings("auto", "slic", max_samples=400), batch_size=16
    )
    explanation = auto.explain(image, cam_mode="none", seed=2)
    record = explanation.info["samples"]
    assert record["adaptive"] and record["samples"] in rounds(400)
    fixed = CamLimeExplainer(explainer.classifier, LimeSettings(record["samples"], "slic"), batch_size=16)
    label = explanation.top_labels[0] if explanation.top_labels else next(iter(explanation.labels))
    expected = fixed.explain(image, cam_mode="none", seed=2, labels=[label])
    np.testing.assert_allclose(
        explanation.labels[label].attributions, expected.labels[label].attributions, rtol=1e-4, atol=1e-6
    )
    with pytest.raises(ValueError, match="auto"):
        auto.sample(image)


def test_settings_refuse_bad_sample_counts():
    for bad in (1, "many", 2.5):
        with pytest.raises(ValueError, match="num_samples"):
            LimeSettings(bad)
    with pytest.raises(ValueError, match="top_k"):
        LimeSettings("auto", top_k=0)
