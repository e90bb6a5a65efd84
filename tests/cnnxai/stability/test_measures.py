"""The stability measures by hand on small arrays: rankings, Jaccard, Kendall's tau, areas, forwards to match."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import kendalltau

from cnnxai.reporting.stability import NOT_REACHED, forwards_to_match, per_image, summarise
from cnnxai.stability.measures import (
    curve_counts,
    jaccard,
    kendall,
    kendall_stability,
    normalised_auc,
    ranking,
    top_k,
    top_k_jaccard,
    top_k_stability,
    top_k_undefined,
)


def test_ranking_is_attribution_descending_ties_by_id():
    assert ranking(np.array([0.1, 0.5, -1.0, 0.5])).tolist() == [1, 3, 0, 2]
    assert top_k(np.array([0.1, 0.5, -1.0, 0.5]), 2) == {1, 3}


def test_jaccard_by_hand():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == pytest.approx(2 / 4)
    assert jaccard(set(), set()) == 1.0
    a, b = np.array([5.0, 4, 3, 2, 1, 0]), np.array([0.0, 4, 3, 2, 1, 5])
    assert top_k_jaccard(a, b, 3) == pytest.approx(2 / 4)  # {0,1,2} vs {5,1,2}


def test_top_k_at_or_past_the_superpixels_is_undefined_with_a_reason():
    assert top_k_undefined(5, 5) and top_k_undefined(4, 5) and not top_k_undefined(6, 5)
    assert math.isnan(top_k_jaccard(np.arange(5.0), np.arange(5.0), 5))
    assert math.isnan(top_k_stability([np.arange(4.0), np.arange(4.0)], 5))


def test_kendall_is_scipys_tau_b_and_nan_when_constant():
    x, y = np.array([1.0, 2, 3, 4, 5]), np.array([2.0, 1, 4, 3, 5])
    assert kendall(x, y) == pytest.approx(kendalltau(x, y).statistic) == pytest.approx(0.6)
    assert kendall(x, x[::-1]) == pytest.approx(-1.0)
    assert math.isnan(kendall(x, np.ones(5)))


def test_stability_is_the_mean_over_pairs_of_seeds():
    a, b, c = np.array([3.0, 2, 1, 0]), np.array([3.0, 2, 0, 1]), np.array([0.0, 1, 2, 3])
    # top-2 sets {0,1}, {0,1}, {3,2}: Jaccard 1, 0, 0
    assert top_k_stability([a, b, c], 2) == pytest.approx(1 / 3)
    expected = np.mean([kendalltau(a, b).statistic, kendalltau(a, c).statistic, kendalltau(b, c).statistic])
    assert kendall_stability([a, b, c]) == pytest.approx(expected)


def test_curve_steps_and_normalised_area():
    assert curve_counts(10, 4).tolist() == [0, 3, 6, 9, 10]  # steps of ceil(10/4) = 3, the last one shorter
    assert curve_counts(9, 20).tolist() == list(range(10))  # more steps than superpixels: one at a time
    fractions = curve_counts(10, 4) / 10
    assert normalised_auc(fractions, np.ones(5)) == pytest.approx(1.0)
    assert normalised_auc(fractions, fractions) == pytest.approx(0.5)  # the diagonal
    values = np.array([1.0, 0.5, 0.2, 0.1, 0.0])
    by_hand = (0.3 * (1 + 0.5) + 0.3 * (0.5 + 0.2) + 0.3 * (0.2 + 0.1) + 0.1 * (0.1 + 0.0)) / 2
    assert normalised_auc(fractions, values) == pytest.approx(by_hand)


def _cell(method, budget, stability, deletion, forwards=None):
    forwards = float(budget) if forwards is None else forwards
    return {"method": method, "budget": str(budget), "forwards": forwards, "top_k_stability": stability,
            "deletion_auc": deletion}  # fmt: skip


def test_forwards_to_match_the_smallest_budget_as_good_as_lime_or_not_reached():
    table = [
        _cell("lime", 100, 0.5, 0.30), _cell("lime", 1000, 0.8, 0.20),
        _cell("fast", 100, 0.7, 0.25), _cell("fast", 250, 0.8, 0.21), _cell("fast", 500, 0.9, 0.19),
        _cell("slow", 100, 0.1, 0.5), _cell("slow", 1000, 0.79, float("nan")),
        _cell("fast[num_samples=auto]", "auto", 0.85, 0.2, forwards=312.5),
        _cell("slow[num_samples=auto]", "auto", 0.7, 0.1, forwards=400.0),
    ]  # fmt: skip
    methods = ["lime", "fast", "slow", "fast[num_samples=auto]", "slow[num_samples=auto]"]
    rows, baseline = forwards_to_match(table, methods, 1000)
    got = {row["method"]: row for row in rows}
    assert baseline["top_k_stability"] == 0.8
    assert got["lime"]["stability_forwards"] == "1000" and got["lime"]["stability_ratio"] == "1.00"
    assert (
        got["fast"]["stability_forwards"] == "250" and got["fast"]["stability_ratio"] == "4.00"
    )  # >= is enough
    assert got["fast"]["deletion_forwards"] == "500" and got["fast"]["deletion_ratio"] == "2.00"
    assert got["slow"]["stability_forwards"] == NOT_REACHED and got["slow"]["stability_ratio"] == ""
    assert got["slow"]["deletion_forwards"] == NOT_REACHED  # a NaN never matches
    assert got["fast[num_samples=auto]"]["stability_forwards"] == "312.5"
    assert got["fast[num_samples=auto]"]["stability_ratio"] == "3.20"
    assert got["fast[num_samples=auto]"]["deletion_forwards"] == "312.5"  # 0.2 <= 0.2
    assert got["slow[num_samples=auto]"]["stability_forwards"] == NOT_REACHED
    assert got["slow[num_samples=auto]"]["deletion_forwards"] == "400"


def test_without_the_baseline_nothing_is_reached():
    rows, baseline = forwards_to_match([_cell("fast", 100, 0.9, 0.1)], ["fast"], 1000)
    assert baseline == {} and rows[0]["stability_forwards"] == rows[0]["deletion_forwards"] == NOT_REACHED


def _row(image, method, budget, seed, attributions, deletion):
    return {"image": image, "method": method, "budget": str(budget), "seed": str(seed), "forwards": str(budget),
            "seconds": "0.1", "r2": "nan", "deletion_auc": repr(deletion), "insertion_auc": "0.5",
            "jaccard_vs_reference": "1.0", "kendall_vs_reference": "nan",
            "attributions": "[" + ", ".join(map(repr, attributions)) + "]"}  # fmt: skip


def test_the_summary_averages_seeds_then_images():
    rows = [
        _row("a", "m", 10, 0, [3.0, 2, 1, 0], 0.2), _row("a", "m", 10, 1, [3.0, 2, 0, 1], 0.4),
        _row("b", "m", 10, 0, [3.0, 2, 1, 0], 0.1), _row("b", "m", 10, 1, [0.0, 1, 2, 3], 0.1),
    ]  # fmt: skip
    images = per_image(rows, top_k=2)
    assert (
        images[("m", "10", "a")]["top_k_stability"] == 1.0
        and images[("m", "10", "b")]["top_k_stability"] == 0.0
    )
    assert images[("m", "10", "a")]["deletion_auc"] == pytest.approx(0.3)
    (cell,) = summarise(rows, ["m"], top_k=2)
    assert cell["top_k_stability"] == pytest.approx(0.5) and cell["deletion_auc"] == pytest.approx(0.2)
    assert cell["images"] == 2 and cell["forwards"] == 10 and math.isnan(cell["r2"])
    assert cell["kendall_across_seeds"] == pytest.approx(
        (kendall(np.array([3.0, 2, 1, 0]), np.array([3.0, 2, 0, 1])) - 1) / 2
    )
