"""Prior strength and floor of GradLIME, BayLIME in the registry, num_samples='auto' for the LIME family and
KernelSHAP."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from cam_ext.priors import floored
from cnnxai.errors import UserInputError
from cnnxai.explainers import explain
from cnnxai.explainers.kernel_shap import shap_covariance, shapley_coalitions
from cnnxai.session import ImageSession
from lime_ext import explanation_rng
from lime_ext.adaptive import rounds
from tests.helpers import fast_options, make_tiny_cnn, small_photo

MODEL, IMAGE = make_tiny_cnn(), small_photo(48)


def run(name, session=None, **options):
    return explain(
        name, MODEL, IMAGE, 1, seed=0, session=session, **fast_options(name, **{"num_samples": 80, **options})
    )


@pytest.mark.parametrize("strength", [0.1, 1.0, 30.0])
def test_prior_strength_is_a_per_superpixel_ridge_penalty(strength):
    """Ridge(lambda) on Z diag(a) is ridge on Z with penalty lambda / a_j^2 on superpixel j: b = a * w."""
    result = run("gradlime", prior_strength=strength, prior_floor=0.05)
    explanation = result.extras["explanation"]
    neighbourhood = result.extras["result"].neighbourhood
    a = explanation.labels[1].prior
    z, y, s = neighbourhood.masks.astype(float), neighbourhood.predictions[:, 1], neighbourhood.sample_weights
    # the penalty lambda / a_j^2 on column j of Z, by augmenting the rows (weighted centring first)
    zc = z - s @ z / s.sum()
    yc = y - s @ y / s.sum()
    augmented = np.vstack([zc * np.sqrt(s)[:, None], np.diag(np.sqrt(strength) / a)])
    target = np.concatenate([yc * np.sqrt(s), np.zeros(len(a))])
    direct, *_ = np.linalg.lstsq(augmented, target, rcond=None)
    np.testing.assert_allclose(explanation.labels[1].attributions, direct, rtol=1e-6, atol=1e-9)
    sklearn = Ridge(alpha=strength).fit(z * a, y, sample_weight=s)
    np.testing.assert_allclose(explanation.labels[1].weights, sklearn.coef_, rtol=1e-6, atol=1e-9)


def test_a_stronger_prior_pulls_the_attributions_towards_zero_and_plain_lime_is_unchanged():
    weak, strong = run("gradlime"), run("gradlime", prior_strength=100.0)
    assert (
        np.abs(strong.extras["superpixel_attributions"]).sum()
        < np.abs(weak.extras["superpixel_attributions"]).sum()
    )
    np.testing.assert_array_equal(
        weak.extras["result"].lime.labels[1].attributions, strong.extras["result"].lime.labels[1].attributions
    )


def test_prior_floor():
    prior = np.array([0.0, 0.1, 0.5, 1.0])
    np.testing.assert_array_equal(floored(prior, 0.0), prior)
    np.testing.assert_allclose(floored(prior, 0.2), [0.2, 0.2, 0.5, 1.0])
    result = run("gradlime", prior_floor=0.3)
    assert result.extras["prior"].min() >= 0.3 and result.extras["prior"].max() == 1.0
    for bad in ({"prior_floor": 1.0}, {"prior_strength": 0.0}):
        with pytest.raises(UserInputError):
            run("gradlime", **bad)


def test_baylime_on_the_shared_samples():
    session = ImageSession(MODEL, IMAGE)
    lime = run("lime", session)
    none = run("baylime", session)
    informed = run("baylime", session, prior="gradcam")
    assert none.extras["forwards"] == lime.extras["forwards"] == 80
    assert len(session.samplers) == 1  # one neighbourhood for all three
    assert not np.allclose(none.extras["superpixel_attributions"], informed.extras["superpixel_attributions"])
    # lambda -> infinity: the posterior mean is the prior mean, a * max|m0| / max(a)
    pinned = run("baylime", session, prior="gradcam", prior_precision=1e12)
    a, m0 = pinned.extras["prior"], none.extras["superpixel_attributions"]
    expected = a * np.abs(m0).max() / a.max()  # m0: the non-informative fit
    np.testing.assert_allclose(pinned.extras["superpixel_attributions"], expected, rtol=1e-6, atol=1e-9)
    with pytest.raises(UserInputError, match="prior"):
        run("baylime", prior="gaussian")
    with pytest.raises(UserInputError, match="auto"):
        run("baylime", noise_precision=-1)


@pytest.mark.parametrize("name", ["lime", "gradlime", "camlime", "baylime", "kernel_shap"])
def test_auto_chooses_a_round_and_says_so(name):
    result = run(name, num_samples="auto", max_samples=160)
    samples = result.extras["samples"]
    assert samples["adaptive"] and result.extras["forwards"] == samples["samples"] in rounds(160)
    assert len(samples["expected_jaccard"]) == rounds(160).index(samples["samples"]) + 1
    again = run(name, num_samples="auto", max_samples=160)
    np.testing.assert_array_equal(result.map, again.map)


def test_auto_is_refused_where_it_means_nothing():
    with pytest.raises(UserInputError, match="auto"):
        run("gradlime", num_samples="auto", cam_mode="legacy")
    with pytest.raises(UserInputError, match="num_samples"):
        run("lime", num_samples="lots")


def test_fixed_segments_serve_every_seed():
    session = ImageSession(MODEL, IMAGE)
    segments = np.repeat(np.arange(6), 8)[None, :].repeat(48, axis=0)  # 6 vertical stripes
    session.fix_segments(segments)
    for seed in (0, 3):
        result = explain("lime", MODEL, IMAGE, 1, seed=seed, session=session, num_samples=30)
        assert result.extras["superpixel_attributions"].shape == (6,)
        assert result.extras["segments"] is segments


def test_shapley_values_covariance_respects_efficiency():
    """sum(phi) is fixed by the efficiency constraint, so its variance is zero: C @ 1 = 0."""
    rng = explanation_rng(0)
    z = shapley_coalitions(300, 6, rng)
    values = z[:, :3].sum(axis=1) + rng.normal(0, 0.1, 300) * (z.sum(axis=1) > 0)
    values[0], values[1] = 3.0, 0.0
    from cnnxai.explainers.kernel_shap import shap_values

    phi = shap_values(z, values)
    covariance = shap_covariance(z, values, phi)
    np.testing.assert_allclose(covariance @ np.ones(6), 0, atol=1e-10)
    assert np.all(covariance.diagonal() > 0)
