"""KernelSHAP on superpixels (Lundberg and Lee 2017), sampled through the batched perturbation engine."""

from __future__ import annotations

import numpy as np

from cnnxai.explainers.lime_family import LIME_OPTIONS, shared_segments
from cnnxai.explainers.registry import Attribution, ExplainContext, register
from lime_ext import LimeSettings, PerturbationEngine, explanation_rng

# KernelSHAP's own sampling reads no kernel width: it weights coalitions by the Shapley kernel.
KERNEL_SHAP_OPTIONS = tuple(option for option in LIME_OPTIONS if option.name != "kernel_width")


def shapley_coalitions(num_samples: int, num_features: int, rng: np.random.Generator) -> np.ndarray:
    """Z (N,M): row 0 all ones, row 1 all zeros, then coalitions whose size k is drawn with the Shapley kernel's
    probability p(k) ∝ (M-1) / (k (M-k)), k = 1..M-1, and whose members are uniform given k."""
    sizes = np.arange(1, num_features)
    weights = (num_features - 1) / (sizes * (num_features - sizes))
    drawn = rng.choice(sizes, size=num_samples - 2, p=weights / weights.sum())
    z = np.zeros((num_samples, num_features), dtype=np.uint8)
    z[0] = 1
    for row, k in enumerate(drawn, start=2):
        z[row, rng.choice(num_features, size=k, replace=False)] = 1
    return z


def shap_values(z: np.ndarray, values: np.ndarray) -> np.ndarray:
    """phi (M,): least squares of values - f(empty) on the sampled coalitions, with the efficiency constraint
    sum(phi) = f(full) - f(empty) imposed exactly (the last feature is eliminated, as the shap package does)."""
    full, empty = values[0], values[1]
    z = z[2:].astype(np.float64)
    y = values[2:] - empty
    total = full - empty
    # phi_M = total - sum(phi_1..M-1): y - z_M total = (z_j - z_M) phi_j
    design = z[:, :-1] - z[:, -1:]
    target = y - z[:, -1] * total
    head, *_ = np.linalg.lstsq(design, target, rcond=None)
    return np.append(head, total - head.sum())


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
    z = shapley_coalitions(settings.num_samples, num_features, rng)
    values = engine.predict(z)[:, context.target].astype(np.float64)
    phi = shap_values(z, values)
    return Attribution(phi.astype(np.float32)[segments], {"shap_values": phi})
