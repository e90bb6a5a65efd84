"""The Bayesian linear surrogate of BayLIME (Zhao et al., UAI 2021): a weighted Bayesian ridge with a prior mean.

Model: y = X w + b + e with noise precision alpha * s_i on row i (s: LIME's kernel weights), prior
w ~ N(mu0, I / lambda), flat prior on b. As scikit-learn's ``BayesianRidge`` does with ``sample_weight``, b is
removed by s-weighted centering and s by rescaling rows with sqrt(s); mu0 enters through w = mu0 + v. With
``prior_mean=None`` and both precisions estimated this is ``BayesianRidge().fit(X, y, sample_weight=s)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg


@dataclass(frozen=True)
class BayesianFit:
    """A fitted Bayesian surrogate over M features.

    ``coef`` (M,) is the posterior mean m and ``covariance`` (M,M) the posterior covariance of the
    coefficients (the intercept has a flat prior). ``alpha`` and ``lambda_`` are the noise and prior
    precisions used, given or estimated, and ``prior_mean`` (M,) is mu0. ``score`` is the s-weighted R^2 of
    the posterior mean on the data and ``local_pred`` its prediction at row 0 (the unperturbed image, by
    LIME's convention). ``iterations`` counts evidence-maximisation iterations (0 when both were given).
    """

    coef: np.ndarray
    intercept: float
    covariance: np.ndarray
    alpha: float
    lambda_: float
    prior_mean: np.ndarray
    score: float
    local_pred: float
    iterations: int


def _vector(name: str, value: np.ndarray, length: int | None = None) -> np.ndarray:
    """``value`` as a finite float64 vector of ``length`` entries (any length when None)."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 1 or (length is not None and len(array) != length):
        raise ValueError(f"{name} must have shape ({length or 'M'},), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array


def bayesian_ridge(
    design: np.ndarray,
    target: np.ndarray,
    sample_weight: np.ndarray,
    prior_mean: np.ndarray | None = None,
    lambda_: float | None = None,
    alpha: float | None = None,
    max_iter: int = 300,
    tol: float = 1e-3,
    alpha_1: float = 1e-6,
    alpha_2: float = 1e-6,
    lambda_1: float = 1e-6,
    lambda_2: float = 1e-6,
) -> BayesianFit:
    """Posterior of w for ``design`` X (N,M), ``target`` y (N,), ``sample_weight`` s (N,), prior mean mu0 (M,).

    Sigma = (lambda I + alpha Xc^T S Xc)^-1 and m = Sigma (lambda mu0 + alpha Xc^T S yc) on the s-centred
    data; intercept = mean_s(y) - mean_s(X) m. A precision left as None is estimated by MacKay's fixed-point
    updates under Gamma(alpha_1, alpha_2) / Gamma(lambda_1, lambda_2) hyperpriors, as ``BayesianRidge``
    (alpha starts at 1 / var_s(y), lambda at 1; the lambda update uses ||m - mu0||^2; the alpha update
    counts sum(s) data points, not N, as sklearn does); a given precision stays fixed.
    """
    X = np.asarray(design, dtype=np.float64)
    if X.ndim != 2 or 0 in X.shape or not np.all(np.isfinite(X)):
        raise ValueError(f"design must be a finite non-empty 2-D array (N,M), got shape {X.shape}")
    n_samples, n_features = X.shape
    y = _vector("target", target, n_samples)
    s = _vector("sample_weight", sample_weight, n_samples)
    if np.any(s < 0) or s.sum() <= 0:
        raise ValueError("sample_weight must be non-negative with a positive sum")
    mu0 = np.zeros(n_features) if prior_mean is None else _vector("prior_mean", prior_mean, n_features)
    for name, value in (("lambda_", lambda_), ("alpha", alpha)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number or None, got {value!r}")
    if max_iter < 1 or tol < 0 or min(alpha_1, alpha_2, lambda_1, lambda_2) < 0:
        raise ValueError("max_iter must be >= 1, and tol, alpha_1, alpha_2, lambda_1, lambda_2 >= 0")

    x_offset = np.average(X, axis=0, weights=s)
    y_offset = float(np.average(y, weights=s))
    Xs = (X - x_offset) * np.sqrt(s)[:, np.newaxis]
    ys = ((y - y_offset) - (X - x_offset) @ mu0) * np.sqrt(s)  # the target of v = w - mu0
    U, singular, Vh_full = linalg.svd(Xs, full_matrices=n_samples < n_features)
    eigen = singular**2
    eigen_full = np.r_[eigen, np.zeros(n_features - len(eigen))]
    Vh = Vh_full[: len(eigen)]
    xt_y = Xs.T @ ys

    def posterior_offset(a: float, lam: float) -> tuple[np.ndarray, float]:
        """v = m - mu0 and the rescaled sum of squared residuals, by sklearn's ``_update_coef_``."""
        if n_samples > n_features:
            v = np.linalg.multi_dot([Vh.T, Vh / (eigen + lam / a)[:, np.newaxis], xt_y])
        else:
            v = np.linalg.multi_dot([Xs.T, U / (eigen + lam / a)[np.newaxis, :], U.T, ys])
        return v, float(np.sum((ys - Xs @ v) ** 2))

    y_var = float(np.average((y - y_offset) ** 2, weights=s))  # sklearn's start: 1 / (var_s(y) + eps)
    a = float(alpha) if alpha is not None else 1.0 / (y_var + np.finfo(np.float64).eps)
    lam = float(lambda_) if lambda_ is not None else 1.0
    iterations = 0
    if alpha is None or lambda_ is None:
        v_old: np.ndarray | None = None
        for _ in range(max_iter):
            iterations += 1
            v, sse = posterior_offset(a, lam)
            gamma = float(np.sum(a * eigen / (lam + a * eigen)))
            if lambda_ is None:
                lam = (gamma + 2 * lambda_1) / (float(np.sum(v**2)) + 2 * lambda_2)
            if alpha is None:
                a = (float(s.sum()) - gamma + 2 * alpha_1) / (sse + 2 * alpha_2)
            if v_old is not None and np.sum(np.abs(v_old - v)) < tol:
                break
            v_old = v
    v, _ = posterior_offset(a, lam)
    coef = mu0 + v
    intercept = y_offset - float(x_offset @ coef)
    covariance = Vh_full.T @ (Vh_full / (a * eigen_full + lam)[:, np.newaxis])
    # The weighted R^2 of sklearn's ``score`` (a constant target scores 1 when fitted exactly, else 0).
    residual = float(np.sum(s * (y - intercept - X @ coef) ** 2))
    total = float(np.sum(s * (y - y_offset) ** 2))
    score = 1.0 - residual / total if total > 0 else float(residual == 0)
    local_pred = intercept + float(X[0] @ coef)
    return BayesianFit(coef, intercept, covariance, a, lam, mu0, score, local_pred, iterations)


def scaled_prior_mean(prior: np.ndarray, reference_coef: np.ndarray) -> np.ndarray:
    """BayLIME's prior mean from a per-superpixel prior a (M,): a * max|reference_coef| / max|a| (M,).

    This puts a Grad-CAM prior into the units of the coefficients (BayLIME's ``get_posterior`` max-abs
    scaling); an all-zero a or reference gives zeros.
    """
    a = _vector("prior", prior)
    reference = _vector("reference_coef", reference_coef, len(a))
    scale, top = float(np.max(np.abs(reference), initial=0.0)), float(np.max(np.abs(a), initial=0.0))
    if scale == 0.0 or top == 0.0:
        return np.zeros_like(a)
    return a * (scale / top)
