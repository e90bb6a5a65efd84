"""Reduced-precision forwards with an exact correction: LIME's fit at fp32 accuracy for fewer fp32 forwards.

The N samples of a neighbourhood are predicted by a *proxy*, the same model run in bf16 or fp16; the first
n <= N samples are also predicted in fp32. For one design (masks and kernel weights) the ridge fit is linear in
the targets, b = A y, so the fit of the fp32 outputs on all N samples is exactly

    b_fp32(N) = b_proxy(N) + A_N (y_fp32 - y_proxy),

and the multi-fidelity estimator replaces the last term, which needs N fp32 forwards, by the same fit on the
first n samples: b = b_proxy(N) + [b_fp32(n) - b_proxy(n)] (coefficient 1; Peherstorfer, Willcox and
Gunzburger, SIAM Review 2018). It differs from b_fp32(N) by A_n d_n - A_N d_N, d = y_fp32 - y_proxy: two fits of
the proxy's error on the same distribution of masks, whose means agree up to the ridge's finite-sample shrinkage
of a fit of d (the proxy's error is ~1e-3 of the outputs, so that term is far below the sampling error); the
estimator converges to the fp32 limit, not the proxy's. Its variance is about var(LIME@N) + (1 - rho^2)
var(LIME@n), rho the correlation of the fp32 and proxy fits' errors, which each explanation measures (the
weighted correlation of the two fits' residuals on the n exact samples) and records.

This module decides which proxy a classifier gets (``proxy='auto'`` times a few forwards of each precision per
model, once per process) and combines the three fits; :class:`~lime_ext.explainer.NeighbourhoodSampler` predicts
the samples and :meth:`~lime_ext.explainer.Neighbourhood.fit` calls :func:`corrected`.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import replace

import numpy as np
import torch

from lime_ext.backends import BackendError, check_precision
from lime_ext.explanation import Explanation, LabelExplanation

REDUCED = ("bf16", "fp16")  # the proxies a device may have
TIMED_ROUNDS = 3  # timed forwards per precision (alternated; the fastest counts) when proxy='auto'

# model -> {(precision, device, input shape): seconds per forward}: 'auto' times each model once per process.
_TIMINGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def device_has(device: torch.device | str, precision: str) -> bool:
    """Whether ``device`` runs ``precision`` natively (:func:`lime_ext.backends.check_precision`: bf16 on a CPU
    with bf16 units or CUDA, fp16 on CUDA); elsewhere autocast would emulate it, slower than fp32."""
    try:
        check_precision(precision, device)
    except BackendError:  # not on this device
        return False
    return True


def _with_precision(classifier, precision: str):
    if not hasattr(classifier, "with_precision"):
        raise BackendError(
            f"proxy={precision} needs a torch classifier that can run in reduced precision; use proxy=none"
        )
    return classifier.with_precision(precision)


def _seconds_per_forward(classifier, batch: torch.Tensor, precisions: tuple[str, ...]) -> dict[str, float]:
    """The fastest of :data:`TIMED_ROUNDS` alternated forwards of ``batch`` in each precision (after one warm-up
    each), cached per model: the CPU is shared, so alternating and taking the minimum compare like with like."""
    timings = _TIMINGS.setdefault(getattr(classifier, "model", classifier), {})
    shape = (str(classifier.device), tuple(batch.shape))
    missing = [p for p in precisions if (p, shape) not in timings]
    if missing:
        runners = {p: classifier if p == "fp32" else _with_precision(classifier, p) for p in missing}
        best = dict.fromkeys(missing, float("inf"))
        with classifier.session():
            for round_ in range(TIMED_ROUNDS + 1):
                for precision, runner in runners.items():
                    start = time.perf_counter()
                    runner.forward_prepared(batch)
                    if round_:  # round 0 warms up
                        best[precision] = min(best[precision], time.perf_counter() - start)
        timings.update({(p, shape): best[p] for p in missing})
    return {p: timings[(p, shape)] for p in precisions}


def resolve_proxy(
    classifier,
    proxy: str,
    batch: torch.Tensor | None = None,
    num_samples: int = 1000,
    exact_samples: int = 100,
) -> tuple[str, object | None, dict]:
    """(precision, proxy classifier or None, record) for ``proxy`` in 'none', 'bf16', 'fp16', 'auto'.

    A named precision that the classifier's device lacks (:func:`device_has`) is refused with
    :class:`~lime_ext.backends.BackendError` (the suite's entry points make it a one-line
    :class:`~cnnxai.errors.UserInputError`). 'auto' times forwards of ``batch`` (a prepared model input (B,3,H,W))
    in fp32 and each precision the device has, and takes the fastest proxy if it pays for itself: N proxy plus
    n fp32 forwards cost less than N fp32 forwards, t_proxy < (1 - n/N) t_fp32; else 'none'. The record keeps
    the measured seconds per forward.
    """
    if proxy == "none":
        return "none", None, {}
    device = torch.device(getattr(classifier, "device", "cpu"))
    if proxy != "auto":
        if not device_has(device, proxy):
            raise BackendError(
                f"proxy={proxy}: this {device.type} device has no native {proxy}; use proxy=auto or proxy=none"
            )
        return proxy, _with_precision(classifier, proxy), {}
    available = [p for p in REDUCED if device_has(device, p)]
    if not available or batch is None or not hasattr(classifier, "with_precision"):
        return "none", None, {"auto": "no reduced precision on this device"}
    seconds = _seconds_per_forward(classifier, batch, ("fp32", *available))
    fastest = min(available, key=seconds.__getitem__)
    record = {"auto_seconds_per_forward": {p: round(s, 6) for p, s in seconds.items()}}
    if seconds[fastest] < (1 - min(exact_samples, num_samples) / num_samples) * seconds["fp32"]:
        return fastest, _with_precision(classifier, fastest), record
    return "none", None, record


def head_penalty_scale(weights: np.ndarray, exact_samples: int) -> float:
    """The factor on the ridge penalty of the two fits of the first n samples: their share of the kernel weight,
    sum(w[:n]) / sum(w). A penalty alpha shrinks a fit of n samples more than one of N; with the same alpha the
    correction b_fp32(n) - b_proxy(n) would remove less of the proxy's systematic error than b_proxy(N) carries,
    a bias of (shrink(N) - shrink(n)) times that error (measured: 40 standard errors on a synthetic case with
    a 5% systematic error). Scaled, both fits are penalised alike per unit of kernel weight."""
    return float(np.sum(weights[:exact_samples]) / np.sum(weights))


def weighted_correlation(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    """The weighted correlation of x and y (n,) under ``weights`` (n,); NaN when either is constant: the rho
    of two fits' residuals on the same samples."""
    x, y = x - np.average(x, weights=weights), y - np.average(y, weights=weights)
    denominator = np.sqrt(np.sum(weights * x * x) * np.sum(weights * y * y))
    return float(np.sum(weights * x * y) / denominator) if denominator > 0 else float("nan")


def fitted_values(explained: LabelExplanation, cam_mode: str, masks: np.ndarray) -> np.ndarray | None:
    """The surrogate's predictions (n,) on binary masks (n,M): intercept + Z b for the CAM 'feature' mode
    (design Z diag(a), b = a w), intercept + Z w otherwise; None for 'legacy' (its design is not Z)."""
    if cam_mode == "legacy":
        return None
    slope = explained.attributions if cam_mode == "feature" else explained.weights
    return explained.intercept + masks.astype(np.float64) @ slope


def corrected(
    bulk: Explanation,
    exact: Explanation,
    head: Explanation,
    masks: np.ndarray,
    weights: np.ndarray,
    exact_targets: np.ndarray,
    head_targets: np.ndarray,
    record: dict,
) -> Explanation:
    """b = bulk + exact - head per label (weights, attributions, intercept, local prediction): ``bulk`` the fit
    of the proxy's outputs on all N samples, ``exact`` and ``head`` the fits of the fp32 and the proxy outputs on
    the first n. ``masks`` (n,M) and kernel ``weights`` (n,) are those n samples, ``exact_targets`` and
    ``head_targets`` (n,C) their outputs, used to measure rho per label. The score (weighted R^2) and any
    posterior covariance are the bulk fit's; the ranking is by |attribution| over the superpixels any fit
    selected. ``record`` (precision, counts) goes to ``info['proxy']`` with the measured rho."""
    labels: dict[int, LabelExplanation] = {}
    rho: dict[int, float | None] = {}
    for label, big in bulk.labels.items():
        fine, coarse = exact.labels[label], head.labels[label]

        sums = {
            name: getattr(big, name) + getattr(fine, name) - getattr(coarse, name)
            for name in ("weights", "attributions", "intercept", "local_pred")
        }
        used = np.union1d(np.union1d(big.ranking, fine.ranking), coarse.ranking)
        ranking = used[np.argsort(-np.abs(sums["attributions"][used]), kind="stable")]
        labels[label] = replace(
            big, weights=sums["weights"], attributions=sums["attributions"], intercept=float(sums["intercept"]),
            local_pred=float(sums["local_pred"]), ranking=ranking.astype(np.int64),
        )  # fmt: skip
        fine_fit, coarse_fit = (fitted_values(e, bulk.cam_mode, masks) for e in (fine, coarse))
        rho[label] = (
            None
            if fine_fit is None
            else round(
                weighted_correlation(
                    exact_targets[:, label] - fine_fit, head_targets[:, label] - coarse_fit, weights
                ),
                6,
            )
        )
    info = {**exact.info, **bulk.info, "proxy": {**record, "coefficient": 1.0, "rho": rho}}
    return replace(bulk, labels=labels, predictions=exact.predictions, info=info)
