"""The statistics of every benchmark summary (MyFaithfulness, MyComplexity, MyStability, Localisation): a seeded
bootstrap interval of a mean over images, a paired comparison of each method with a baseline (mean difference,
its interval, the Wilcoxon signed-rank p-value, Holm-corrected over the comparisons of one metric), and the rule
that marks a metric's best method only when its lead is significant.

The unit of every statistic is the image: a method's scores are a mapping image -> value, NaN (undefined) values
are left out, and a paired statistic uses the images on which both methods have a defined value. Every
computation sorts by image first, and every bootstrap starts a fresh generator from the seed, so a cell's
numbers depend only on its own values and the seed (not on which other cells were computed, nor in what order).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from cnnxai.errors import UserInputError

CONFIDENCE = 0.95  # of every bootstrap interval
ALPHA = 0.05  # a Holm-corrected p-value below this is significant
RESAMPLES = 9999  # bootstrap resamples (scipy's default)
DEFAULT_BASELINE = "lime"

Scores = Mapping[Hashable, float]  # image -> value of one method on one metric

# scipy 1.15 renamed bootstrap's random_state to rng (the old name is deprecated); requirements allow 1.10.
_RNG_ARGUMENT = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def bootstrap_ci(values: Sequence[float] | np.ndarray, seed: int) -> tuple[float, float]:
    """The percentile bootstrap ``CONFIDENCE`` interval of the mean of ``values`` (1-D, NaNs left out), from
    ``RESAMPLES`` resamples drawn by ``np.random.default_rng(seed)`` (scipy.stats.bootstrap). (NaN, NaN) for
    fewer than two values: one image gives no spread to resample."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return math.nan, math.nan
    result = stats.bootstrap(
        (values,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES, method="percentile",
        vectorized=True, **{_RNG_ARGUMENT: np.random.default_rng(seed)},
    )  # fmt: skip
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def wilcoxon_p(differences: Sequence[float] | np.ndarray) -> float:
    """The two-sided Wilcoxon signed-rank p-value of paired ``differences`` (scipy.stats.wilcoxon's defaults:
    zero differences dropped, exact distribution for small samples without ties). 1.0 when no difference is
    non-zero (what scipy returns, without its warning); NaN for no pairs."""
    differences = np.asarray(differences, dtype=np.float64)
    if len(differences) == 0:
        return math.nan
    if not np.any(differences):
        return 1.0
    return float(stats.wilcoxon(differences).pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: with the m defined p-values sorted ascending,
    p_(i) becomes max over j <= i of min(1, (m - j + 1) p_(j)). NaN stays NaN and does not count in m."""
    adjusted = [math.nan] * len(pvalues)
    order = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Paired:
    """One method against another on the images both have: ``n_pairs``, the mean of (method - other), its
    bootstrap interval, and the Wilcoxon p-value (uncorrected)."""

    n_pairs: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p: float


def paired(method: Scores, other: Scores, seed: int, interval: bool = True) -> Paired:
    """Compare ``method`` with ``other`` image by image (images sorted, NaN values left out); ``interval``
    False leaves the bootstrap out (NaN bounds), for a test alone."""
    images = sorted(
        key
        for key, value in method.items()
        if not math.isnan(value) and key in other and not math.isnan(other[key])
    )
    differences = np.array([method[key] - other[key] for key in images], dtype=np.float64)
    mean = float(differences.mean()) if len(differences) else math.nan
    low, high = bootstrap_ci(differences, seed) if interval else (math.nan, math.nan)
    return Paired(len(images), mean, low, high, wilcoxon_p(differences))


def favours(mean_diff: float, direction: str) -> bool:
    """Whether a mean difference (method - other) is in the metric's better direction ('higher' or 'lower')."""
    return mean_diff > 0 if direction == "higher" else mean_diff < 0


def compare_to_baseline(
    scores: Mapping[Hashable, Scores],
    methods: Sequence[Hashable],
    baseline: Hashable,
    direction: str,
    seed: int,
) -> list[dict]:
    """Each of ``methods`` but ``baseline`` against it, on one metric: a row per method with n_pairs, mean_diff
    (method - baseline), ci_low, ci_high, wilcoxon_p, p_holm (Holm over these rows: the comparisons of this
    metric), significant (p_holm < ALPHA) and better ('method' or 'baseline', the side the mean difference
    favours by ``direction``, when significant; '' otherwise). A method is any hashable key of ``scores`` (a
    name; MyStability's (method, N))."""
    others = [m for m in methods if m != baseline]
    results = [paired(scores.get(m, {}), scores.get(baseline, {}), seed) for m in others]
    adjusted = holm([r.p for r in results])
    rows = []
    for method, result, p_holm in zip(others, results, adjusted, strict=True):
        significant = not math.isnan(p_holm) and p_holm < ALPHA
        better = ""
        if significant and favours(result.mean_diff, direction):
            better = "method"
        elif significant and favours(-result.mean_diff, direction):
            better = "baseline"
        rows.append({
            "method": method, "baseline": baseline, "n_pairs": result.n_pairs, "mean_diff": result.mean_diff,
            "ci_low": result.ci_low, "ci_high": result.ci_high, "wilcoxon_p": result.p, "p_holm": p_holm,
            "significant": significant, "better": better,
        })  # fmt: skip
    return rows


def significant_best(
    scores: Mapping[str, Scores], means: Mapping[str, float], direction: str, seed: int
) -> str | None:
    """The method to mark best on one metric, or None. The leader is the method with the best mean (by
    ``direction``; NaN means left out); it is marked only when it is significantly better than every other
    method with a defined mean: for each, the paired mean difference (leader - other, on the images both have)
    favours the leader and the Wilcoxon p-value, Holm-corrected over these comparisons, is below ALPHA. A tie
    for the best mean, or a single method, marks none."""
    defined = {m: v for m, v in means.items() if not math.isnan(v)}
    if len(defined) < 2:
        return None
    ranked = sorted(defined, key=lambda m: defined[m], reverse=direction == "higher")
    leader = ranked[0]
    if defined[ranked[1]] == defined[leader]:
        return None
    results = [paired(scores.get(leader, {}), scores.get(m, {}), seed, interval=False) for m in ranked[1:]]
    adjusted = holm([r.p for r in results])
    ahead = all(
        favours(r.mean_diff, direction) and not math.isnan(p) and p < ALPHA
        for r, p in zip(results, adjusted, strict=True)
    )
    return leader if ahead else None


def choose_baseline(methods: Sequence[str], requested: str | None) -> tuple[str, str]:
    """The baseline of the comparisons and a note for summary.md ('' when nothing needs saying): ``requested``
    when given (a :class:`UserInputError` when it is not among ``methods``); else ``DEFAULT_BASELINE`` when run,
    else the first method, with a note saying so."""
    if requested is not None:
        if requested not in methods:
            raise UserInputError(
                f"--baseline {requested}: not among the methods ({', '.join(methods)}); name one of them"
            )
        return requested, ""
    if DEFAULT_BASELINE in methods or not methods:
        return DEFAULT_BASELINE, ""
    return methods[0], (
        f"{DEFAULT_BASELINE} was not run, so the comparisons are against the first method, {methods[0]} "
        "(--baseline chooses another)."
    )
