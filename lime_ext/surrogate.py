"""The weighted ridge surrogate of LIME (lime 0.2.0.1's ``LimeBase``), with optional per-feature priors.

With no prior this reproduces ``LimeBase.explain_instance_with_data`` exactly (same kernel, distances,
feature selection and Ridge fits); tests hold it to 1e-8 against lime itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import Ridge, lars_path
from sklearn.metrics import pairwise_distances

FEATURE_SELECTIONS = ("auto", "none", "forward_selection", "highest_weights", "lasso_path")


def is_uniform(prior: np.ndarray | None) -> bool:
    """True when a prior carries no preference (None or all entries equal)."""
    return prior is None or bool(np.all(prior == prior.flat[0]))


def cosine_distances_to_first(masks: np.ndarray) -> np.ndarray:
    """Cosine distance of every row of the binary Z (N,M) to row 0, as lime computes it (N,)."""
    return pairwise_distances(masks, masks[0].reshape(1, -1), metric="cosine").ravel()


def exponential_kernel(distances: np.ndarray, kernel_width: float = 0.25) -> np.ndarray:
    """lime_image's sample weights: sqrt(exp(-d^2 / width^2))."""
    return np.sqrt(np.exp(-(distances**2) / kernel_width**2))


def _forward_selection(
    data: np.ndarray, labels: np.ndarray, weights: np.ndarray, num_features: int
) -> np.ndarray:
    clf = Ridge(alpha=0, fit_intercept=True)
    used: list[int] = []
    for _ in range(min(num_features, data.shape[1])):
        best, best_score = 0, -100000000.0
        for feature in range(data.shape[1]):
            if feature in used:
                continue
            clf.fit(data[:, used + [feature]], labels, sample_weight=weights)
            score = clf.score(data[:, used + [feature]], labels, sample_weight=weights)
            if score > best_score:
                best, best_score = feature, score
        used.append(best)
    return np.array(used)


def select_features(
    data: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    num_features: int,
    method: str,
    selection_scale: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the features to fit, by lime's rules.

    ``selection_scale`` (M,) multiplies the 'highest_weights' score |coef_j x_0j| (CamLIME's
    'importance' mode ranks by |coef_j| a_j). 'auto' is forward selection up to 6 features, else
    highest weights.
    """
    if method == "none":
        return np.arange(data.shape[1])
    if method == "forward_selection":
        return _forward_selection(data, labels, weights, num_features)
    if method == "highest_weights":
        clf = Ridge(alpha=0.01, fit_intercept=True)
        clf.fit(data, labels, sample_weight=weights)
        score = clf.coef_ * data[0]
        if selection_scale is not None:
            score = score * selection_scale
        ranked = sorted(
            zip(range(data.shape[1]), score, strict=True), key=lambda x: np.abs(x[1]), reverse=True
        )
        return np.array([index for index, _ in ranked[:num_features]])
    if method == "lasso_path":
        weighted_data = (data - np.average(data, axis=0, weights=weights)) * np.sqrt(weights[:, np.newaxis])
        weighted_labels = (labels - np.average(labels, weights=weights)) * np.sqrt(weights)
        nonzero = np.arange(weighted_data.shape[1])
        _, _, coefs = lars_path(weighted_data, weighted_labels, method="lasso", verbose=False)
        for i in range(len(coefs.T) - 1, 0, -1):
            nonzero = coefs.T[i].nonzero()[0]
            if len(nonzero) <= num_features:
                break
        return nonzero
    if method == "auto":
        chosen = "forward_selection" if num_features <= 6 else "highest_weights"
        return select_features(data, labels, weights, num_features, chosen, selection_scale)
    raise ValueError(f"unknown feature selection {method!r}; choose one of {', '.join(FEATURE_SELECTIONS)}")


@dataclass(frozen=True)
class SurrogateFit:
    """A fitted surrogate: ``coef`` (M,) is zero for features not selected; ``used`` (K,) the selected ones."""

    intercept: float
    coef: np.ndarray
    used: np.ndarray
    score: float
    local_pred: float


def fit_surrogate(
    design: np.ndarray,
    target: np.ndarray,
    sample_weight: np.ndarray,
    num_features: int = 100000,
    feature_selection: str = "auto",
    ridge_alpha: float = 1.0,
    selection_scale: np.ndarray | None = None,
) -> SurrogateFit:
    """Ridge(alpha) with intercept on the selected columns of ``design`` (N,M), weighted by ``sample_weight``.

    ``score`` is the weighted R^2 on the same data and ``local_pred`` the prediction at row 0, as lime.
    """
    used = select_features(design, target, sample_weight, num_features, feature_selection, selection_scale)
    model = Ridge(alpha=ridge_alpha, fit_intercept=True)
    model.fit(design[:, used], target, sample_weight=sample_weight)
    score = model.score(design[:, used], target, sample_weight=sample_weight)
    local_pred = model.predict(design[0, used].reshape(1, -1))
    coef = np.zeros(design.shape[1], dtype=np.float64)
    coef[used] = model.coef_
    return SurrogateFit(
        intercept=float(model.intercept_),
        coef=coef,
        used=np.asarray(used, dtype=np.int64),
        score=float(score),
        local_pred=float(local_pred[0]),
    )
