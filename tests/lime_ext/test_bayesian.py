"""The BayLIME surrogate against its closed form, its limits, the substitution w = mu0 + v and sklearn's BayesianRidge."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import BayesianRidge, LinearRegression

from lime_ext.bayesian import BayesianFit, bayesian_ridge, scaled_prior_mean

X_TINY = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0], [0.5, 3.0], [-1.0, 2.0]])
Y_TINY = np.array([1.0, 2.5, 3.0, 0.5, 6.0, 2.0])
S_TINY = np.array([1.0, 0.5, 2.0, 0.25, 1.5, 0.75])
MU_TINY = np.array([0.7, -0.3])


def closed_form(X, y, s, mu0, lam, alpha):
    """The posterior of (b, w) under the block prior: flat on b (precision 0), N(mu0, I/lam) on w."""
    A = np.column_stack([np.ones(len(y)), X])
    prior_precision = np.diag([0.0] + [lam] * X.shape[1])
    precision = prior_precision + alpha * A.T @ (s[:, None] * A)
    mean = np.linalg.solve(precision, prior_precision @ np.r_[0.0, mu0] + alpha * A.T @ (s * y))
    # Sigma of w alone is the Schur complement (the b block marginalised out).
    return mean[0], mean[1:], np.linalg.inv(precision)[1:, 1:]


def random_problem(seed=0, n=200, m=10):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, m))
    y = X @ rng.normal(size=m) + 0.3 + rng.normal(scale=0.5, size=n)
    return X, y, rng.uniform(0.1, 3.0, size=n)


def lime_like_problem(seed=1, n=200, m=10):
    rng = np.random.default_rng(seed)
    Z = rng.integers(0, 2, size=(n, m)).astype(np.float64)
    Z[0] = 1.0
    y = 1.0 / (1.0 + np.exp(-(Z @ rng.normal(size=m) - 0.5)))
    distances = 1.0 - Z.sum(axis=1) / (np.sqrt(Z.sum(axis=1).clip(1)) * np.sqrt(m))
    return Z, y, np.sqrt(np.exp(-(distances**2) / 0.25**2))


def test_closed_form_on_tiny_weighted_problem():
    fit = bayesian_ridge(X_TINY, Y_TINY, S_TINY, prior_mean=MU_TINY, lambda_=0.8, alpha=2.5)
    intercept, coef, covariance = closed_form(X_TINY, Y_TINY, S_TINY, MU_TINY, 0.8, 2.5)
    assert isinstance(fit, BayesianFit) and fit.iterations == 0
    np.testing.assert_allclose(fit.coef, coef, rtol=0, atol=1e-10)
    assert fit.intercept == pytest.approx(intercept, abs=1e-10)
    np.testing.assert_allclose(fit.covariance, covariance, rtol=0, atol=1e-10)
    assert fit.local_pred == pytest.approx(intercept + X_TINY[0] @ coef, abs=1e-10)
    assert (fit.alpha, fit.lambda_) == (2.5, 0.8)
    np.testing.assert_array_equal(fit.prior_mean, MU_TINY)


def test_substitution_w_equals_mu0_plus_v():
    direct = bayesian_ridge(X_TINY, Y_TINY, S_TINY, prior_mean=MU_TINY, lambda_=0.8, alpha=2.5)
    shifted = bayesian_ridge(X_TINY, Y_TINY - X_TINY @ MU_TINY, S_TINY, lambda_=0.8, alpha=2.5)
    np.testing.assert_allclose(direct.coef, MU_TINY + shifted.coef, rtol=0, atol=1e-12)
    assert direct.intercept == pytest.approx(shifted.intercept, abs=1e-12)
    np.testing.assert_allclose(direct.covariance, shifted.covariance, rtol=0, atol=1e-12)


def test_vanishing_prior_precision_is_weighted_least_squares():
    fit = bayesian_ridge(X_TINY, Y_TINY, S_TINY, prior_mean=MU_TINY, lambda_=1e-10, alpha=1.0)
    wls = LinearRegression().fit(X_TINY, Y_TINY, sample_weight=S_TINY)
    np.testing.assert_allclose(fit.coef, wls.coef_, rtol=0, atol=1e-6)
    assert fit.intercept == pytest.approx(wls.intercept_, abs=1e-6)
    assert fit.score == pytest.approx(wls.score(X_TINY, Y_TINY, sample_weight=S_TINY), abs=1e-6)


def test_huge_prior_precision_pins_coef_to_prior_mean():
    fit = bayesian_ridge(X_TINY, Y_TINY, S_TINY, prior_mean=MU_TINY, lambda_=1e12, alpha=1.0)
    np.testing.assert_allclose(fit.coef, MU_TINY, rtol=0, atol=1e-6)
    assert np.all(np.abs(np.linalg.eigvalsh(fit.covariance)) < 1e-11)


@pytest.mark.parametrize(
    "problem",
    [random_problem(), lime_like_problem(), random_problem(seed=2, n=8, m=15)],
    ids=["random", "lime-like", "fewer-rows-than-features"],
)
def test_non_informative_fit_is_sklearns_bayesian_ridge(problem):
    X, y, s = problem
    fit = bayesian_ridge(X, y, s)
    reference = BayesianRidge(fit_intercept=True).fit(X, y, sample_weight=s)
    assert fit.iterations == reference.n_iter_ and fit.iterations > 1
    np.testing.assert_allclose(fit.coef, reference.coef_, rtol=1e-6, atol=1e-12)
    assert fit.intercept == pytest.approx(reference.intercept_, rel=1e-6)
    assert fit.alpha == pytest.approx(reference.alpha_, rel=1e-6)
    assert fit.lambda_ == pytest.approx(reference.lambda_, rel=1e-6)
    np.testing.assert_allclose(fit.covariance, reference.sigma_, rtol=1e-6, atol=1e-12)
    assert fit.score == pytest.approx(reference.score(X, y, sample_weight=s), rel=1e-9)
    assert fit.local_pred == pytest.approx(reference.predict(X[:1])[0], rel=1e-9)


@pytest.mark.parametrize("max_iter", [1, 2])
def test_truncated_evidence_maximisation_is_sklearns_from_the_same_start(max_iter):
    X, y, s = lime_like_problem()
    fit = bayesian_ridge(X, y, s, max_iter=max_iter)
    reference = BayesianRidge(max_iter=max_iter).fit(X, y, sample_weight=s)
    assert fit.iterations == reference.n_iter_ == max_iter
    assert fit.alpha == pytest.approx(reference.alpha_, rel=1e-9)
    assert fit.lambda_ == pytest.approx(reference.lambda_, rel=1e-9)
    np.testing.assert_allclose(fit.coef, reference.coef_, rtol=1e-9, atol=1e-12)


def test_fixed_alpha_estimates_lambda_at_its_fixed_point_around_the_prior_mean():
    X, y, s = lime_like_problem()
    mu0 = np.linspace(-0.2, 0.3, X.shape[1])
    fit = bayesian_ridge(X, y, s, prior_mean=mu0, alpha=50.0, tol=1e-12)
    assert fit.alpha == 50.0 and 1 < fit.iterations < 300
    Xs = (X - np.average(X, axis=0, weights=s)) * np.sqrt(s)[:, None]
    eigen = np.linalg.eigvalsh(Xs.T @ Xs)
    gamma = np.sum(50.0 * eigen / (fit.lambda_ + 50.0 * eigen))
    lam = (gamma + 2e-6) / (np.sum((fit.coef - mu0) ** 2) + 2e-6)
    assert fit.lambda_ == pytest.approx(lam, rel=1e-6)
    fixed = bayesian_ridge(X, y, s, prior_mean=mu0, lambda_=fit.lambda_, alpha=50.0)
    np.testing.assert_allclose(fit.coef, fixed.coef, rtol=0, atol=1e-12)


def test_scaled_prior_mean():
    a = np.array([0.0, 0.2, 0.5, 1.0])
    reference = np.array([0.1, -0.4, 0.05, 0.2])
    mu0 = scaled_prior_mean(a, reference)
    assert np.max(np.abs(mu0)) == pytest.approx(0.4)
    np.testing.assert_allclose(mu0, a * 0.4, rtol=1e-12)
    np.testing.assert_array_equal(scaled_prior_mean(np.zeros(4), reference), np.zeros(4))
    np.testing.assert_array_equal(scaled_prior_mean(a, np.zeros(4)), np.zeros(4))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"design": np.ones(6)}, "design must be"),
        ({"design": np.full((6, 2), np.nan)}, "design must be a finite"),
        ({"target": np.ones(5)}, "target must have shape"),
        ({"target": np.r_[np.inf, np.ones(5)]}, "target must be finite"),
        ({"sample_weight": -S_TINY}, "sample_weight must be non-negative"),
        ({"sample_weight": np.zeros(6)}, "positive sum"),
        ({"prior_mean": np.ones(3)}, "prior_mean must have shape"),
        ({"lambda_": 0.0}, "lambda_ must be a positive"),
        ({"alpha": -1.0}, "alpha must be a positive"),
        ({"alpha": np.inf}, "alpha must be a positive"),
        ({"max_iter": 0}, "max_iter must be"),
    ],
)
def test_bad_inputs_raise(kwargs, message):
    arguments = {"design": X_TINY, "target": Y_TINY, "sample_weight": S_TINY, **kwargs}
    with pytest.raises(ValueError, match=message):
        bayesian_ridge(**arguments)


def test_bad_prior_scaling_inputs_raise():
    with pytest.raises(ValueError, match="prior must have shape"):
        scaled_prior_mean(np.ones((2, 2)), np.ones(4))
    with pytest.raises(ValueError, match="reference_coef must have shape"):
        scaled_prior_mean(np.ones(4), np.ones(3))
