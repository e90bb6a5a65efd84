"""KernelSHAP on superpixels (Lundberg and Lee 2017), sampled through the batched perturbation engine.

With ``num_samples='auto'`` the coalitions of ``max_samples`` are drawn at once and used as growing prefixes
until the top-k Shapley values are settled (the same test as LIME's, :mod:`lime_ext.adaptive`).
"""

from __future__ import annotations

import numpy as np

from cnnxai.explainers.lime_family import LIME_OPTIONS, forwards, shared_segments
from cnnxai.explainers.registry import Attribution, ExplainContext, register
from lime_ext import LimeSettings, PerturbationEngine, explanation_rng, sample_until_settled
from lime_ext.adaptive import fixed_record, ridge_covariance
from lime_ext.multifidelity import resolve_proxy, weighted_correlation
from lime_ext.sampling import check_sampling

# KernelSHAP's own sampling reads no kernel width: it weights coalitions by the Shapley kernel.
KERNEL_SHAP_OPTIONS = tuple(option for option in LIME_OPTIONS if option.name != "kernel_width")


def shapley_coalitions(
    num_samples: int, num_features: int, rng: np.random.Generator, sampling: str = "iid"
) -> np.ndarray:
    """Z (N,M): row 0 all ones, row 1 all zeros, then coalitions whose size k is drawn with the Shapley kernel's
    probability p(k) ∝ (M-1) / (k (M-k)), k = 1..M-1, and whose members are uniform given k. ``'paired'``: rows
    2i+1 are the complements of rows 2i (Covert and Lee 2021; p(k) = p(M-k), so each row keeps its law), and rows
    0 and 1 are already such a pair. (``num_samples='auto'`` draws ``max_samples`` rows at once and uses prefixes,
    which keeps pairs whole at even counts.)"""
    check_sampling(sampling)
    sizes = np.arange(1, num_features)
    weights = (num_features - 1) / (sizes * (num_features - sizes))
    paired = sampling == "paired"
    drawn = rng.choice(
        sizes, size=(num_samples - 1) // 2 if paired else num_samples - 2, p=weights / weights.sum()
    )
    z = np.zeros((num_samples, num_features), dtype=np.uint8)
    z[0] = 1
    for i, k in enumerate(drawn):
        row = 2 + 2 * i if paired else 2 + i
        z[row, rng.choice(num_features, size=k, replace=False)] = 1
        if paired and row + 1 < num_samples:
            z[row + 1] = 1 - z[row]
    return z


def _reduced(z: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    # phi_M = total - sum(phi_1..M-1): y - z_M total = (z_j - z_M) phi_j
    full, empty = values[0], values[1]
    z = z[2:].astype(np.float64)
    total = full - empty
    return z[:, :-1] - z[:, -1:], values[2:] - empty - z[:, -1] * total, total


def shap_values(z: np.ndarray, values: np.ndarray) -> np.ndarray:
    """phi (M,): least squares of values - f(empty) on the sampled coalitions, with the efficiency constraint
    sum(phi) = f(full) - f(empty) imposed exactly (the last feature is eliminated, as the shap package does)."""
    design, target, total = _reduced(z, values)
    head, *_ = np.linalg.lstsq(design, target, rcond=None)
    return np.append(head, total - head.sum())


def shap_covariance(z: np.ndarray, values: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Sandwich covariance (M,M) of phi (the last value is minus the sum of the others), for the stopping test."""
    design, target, _ = _reduced(z, values)
    head = ridge_covariance(design, target, np.ones(len(target)), phi[:-1], 0.0, intercept=False)
    jacobian = np.vstack([np.eye(len(head)), -np.ones((1, len(head)))])
    return jacobian @ head @ jacobian.T


def residual_correlation(z: np.ndarray, fine: np.ndarray, coarse: np.ndarray) -> float:
    """rho of the multi-fidelity estimator: the correlation of the residuals of the fp32 fit (values ``fine``)
    and the proxy's fit (``coarse``) on the same coalitions ``z`` (n,M), as LIME's record measures it."""
    design, fine_target, _ = _reduced(z, fine)
    _, coarse_target, _ = _reduced(z, coarse)
    fine_residual = fine_target - design @ shap_values(z, fine)[:-1]
    coarse_residual = coarse_target - design @ shap_values(z, coarse)[:-1]
    return weighted_correlation(fine_residual, coarse_residual, np.ones(len(fine_residual)))


@register(
    "kernel_shap",
    "KernelSHAP on the LIME superpixels: Shapley-kernel coalitions, efficiency exact; seeded",
    KERNEL_SHAP_OPTIONS,
    random=True,
)
def kernel_shap(context: ExplainContext) -> Attribution:
    settings = context.settings(LimeSettings)
    segments = shared_segments(context, settings)
    num_features = int(segments.max()) + 1
    if num_features < 2:
        raise ValueError("kernel_shap needs at least 2 superpixels")
    engine = PerturbationEngine(
        context.image, segments, context.classifier, settings.hide_color, context.batch_size
    )
    rng = explanation_rng(context.seed + 1, context.image)
    drawn = int(settings.max_samples if settings.adaptive else settings.num_samples)
    z = shapley_coalitions(drawn, num_features, rng, settings.sampling)
    target = context.target
    precision, reduced, record = resolve_proxy(
        context.classifier, settings.proxy, engine.timing_batch() if settings.proxy == "auto" else None, drawn,
        settings.exact_samples,
    )  # fmt: skip
    engines = {"fp32": engine}
    if reduced is not None:
        engines[precision] = PerturbationEngine(
            context.image, segments, reduced, settings.hide_color, engine.batch_size
        )
    predicted: dict[str, np.ndarray] = {key: np.zeros(0) for key in engines}
    exact = settings.exact_samples

    def values(key: str, n: int) -> np.ndarray:
        done = len(predicted[key])
        if n > done:
            new = engines[key].predict(z[done:n])[:, target].astype(np.float64)
            predicted[key] = np.concatenate([predicted[key], new])
        return predicted[key][:n]

    def plan(n: int) -> dict[str, int]:
        return {"fp32": n} if len(engines) == 1 or n <= exact else {precision: n, "fp32": exact}

    def at(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if len(plan(n)) == 1:  # fp32 alone
            y = values("fp32", n)
            phi = shap_values(z[:n], y)
            return phi, phi, shap_covariance(z[:n], y, phi) if settings.adaptive else None
        # the multi-fidelity estimator (lime_ext.multifidelity): phi is linear in the values for fixed coalitions
        bulk, fine = values(precision, n), values("fp32", exact)
        correction = shap_values(z[:exact], fine) - shap_values(z[:exact], bulk[:exact])
        phi = shap_values(z[:n], bulk) + correction
        if not settings.adaptive:
            return phi, phi, None
        covariance = shap_covariance(z[:n], bulk, phi - correction) + shap_covariance(
            z[:exact], fine - bulk[:exact], correction
        )
        return phi, phi, covariance

    if settings.adaptive:
        settled = sample_until_settled(at, settings.top_k, settings.max_samples)
        phi, samples = settled.result, settled.record
    else:
        phi, samples = at(int(settings.num_samples))[0], fixed_record(settings.num_samples)
    samples = {**samples, "forwards": plan(int(samples["samples"]))}
    if reduced is not None:
        corrected = len(samples["forwards"]) == 2
        rho = residual_correlation(z[:exact], values("fp32", exact), values(precision, exact)) if corrected else None
        samples["proxy"] = {
            "requested": settings.proxy,
            "precision": precision,
            **record,
            "exact_samples": exact,
            "rho": {int(target): None if rho is None else round(rho, 6)},
        }
    elif settings.proxy != "none":
        samples["proxy"] = {"requested": settings.proxy, "precision": "none", **record}
    extras = {"shap_values": phi, "superpixel_attributions": phi, "forwards": forwards(samples),
              "score": float("nan"), "segments": segments, "samples": samples}  # fmt: skip
    return Attribution(phi.astype(np.float32)[segments], extras)
