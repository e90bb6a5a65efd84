"""The statistics of the benchmark summaries against scipy and hand-computed cases: bootstrap intervals,
Wilcoxon p-values, Holm's correction, comparison.csv on a tiny scores table, the significant-best rule, n = 1."""

from __future__ import annotations

import csv
import inspect
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from cnnxai.benchmark.statistics import (
    RESAMPLES,
    bootstrap_ci,
    choose_baseline,
    holm,
    paired,
    significant_best,
    wilcoxon_p,
)
from cnnxai.errors import UserInputError
from cnnxai.reporting.summary import compare, paired_figure, summarise, write_summary

RNG = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def rows_of(table: dict[str, dict[str, list[float]]]) -> list[dict]:
    """Score rows (as scores.csv's: values as text) of {metric: {method: [value per image]}}."""
    return [
        {"image": f"im{i}", "method": method, "metric": metric, "value": repr(float(value))}
        for metric, methods in table.items()
        for method, values in methods.items()
        for i, value in enumerate(values)
    ]


@pytest.mark.parametrize("n", [2, 5, 12])
def test_bootstrap_interval_is_scipys_percentile_interval_from_the_seed(n):
    values = np.random.default_rng(n).normal(size=n)
    expected = stats.bootstrap(
        (values,), np.mean, confidence_level=0.95, n_resamples=RESAMPLES, method="percentile",
        **{RNG: np.random.default_rng(7)},
    ).confidence_interval  # fmt: skip
    assert bootstrap_ci(values, seed=7) == (expected.low, expected.high)
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)  # deterministic
    if (
        n == 12
    ):  # the seed matters (for fewer values the few possible resample means often give the same ends)
        assert bootstrap_ci(values, seed=7) != bootstrap_ci(values, seed=8)


def test_bootstrap_interval_agrees_with_a_plain_resampling_and_the_normal_approximation():
    """An independent percentile bootstrap (numpy, another generator) within Monte-Carlo tolerance, and for
    200 normal values the interval mean ± 1.96 s/sqrt(n) within 10% of its width."""
    values = np.random.default_rng(1).normal(2.0, 3.0, size=200)
    low, high = bootstrap_ci(values, seed=0)
    draws = np.random.default_rng(99).integers(0, len(values), size=(20000, len(values)))
    plain = np.percentile(values[draws].mean(axis=1), [2.5, 97.5])
    width = high - low
    assert abs(low - plain[0]) < 0.03 * width and abs(high - plain[1]) < 0.03 * width
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    assert (
        abs(low - (values.mean() - half)) < 0.1 * width and abs(high - (values.mean() + half)) < 0.1 * width
    )


def test_bootstrap_interval_leaves_out_nans_and_needs_two_values():
    values = np.array([0.2, np.nan, 0.5, 0.9])
    assert bootstrap_ci(values, 3) == bootstrap_ci(values[~np.isnan(values)], 3)
    assert all(math.isnan(v) for v in bootstrap_ci([0.4], 3))
    assert all(math.isnan(v) for v in bootstrap_ci([0.4, np.nan], 3))
    assert bootstrap_ci([0.4, 0.4, 0.4], 3) == pytest.approx((0.4, 0.4))


@pytest.mark.parametrize(
    "differences",
    [[0.5, 0.2], [1, 2, -3, 4, 5.5, 0], [0.1, 0.1, 0.1], [0.3, -0.1, 0.25, 0.4, 0.05, 0.6, -0.2, 0.35],
     list(np.random.default_rng(4).normal(0.2, 1, 60))],
)  # fmt: skip
def test_wilcoxon_p_is_scipys(differences):
    assert wilcoxon_p(differences) == stats.wilcoxon(differences).pvalue


def test_wilcoxon_p_without_a_nonzero_difference():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns of its 0/0 here
        expected = stats.wilcoxon([0.0, 0.0, 0.0]).pvalue
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ours does not
        assert wilcoxon_p([0.0, 0.0, 0.0]) == expected == 1.0
    assert math.isnan(wilcoxon_p([]))


def test_holm_against_a_hand_computed_case():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4 0.02, x3 0.03, x2 0.06, x1 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # NaN stays NaN and does not count: m = 2
    adjusted = holm([0.02, math.nan, 0.04])
    assert (
        adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    )
    assert holm([0.6, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm([0.03]) == [0.03] and holm([]) == []


def test_comparison_rows_on_a_tiny_scores_table():
    """lime is the baseline; on Deletion (lower is better) gradlime is lower on all 8 images and ig is noise;
    one of ig's images is NaN, so it is paired on 7."""
    lime = [0.50, 0.42, 0.61, 0.38, 0.55, 0.47, 0.66, 0.52]
    gradlime = [v - d for v, d in zip(lime, [0.10, 0.08, 0.12, 0.05, 0.09, 0.11, 0.07, 0.06], strict=True)]
    ig = [0.52, 0.40, 0.63, 0.36, 0.57, float("nan"), 0.64, 0.53]
    scores = rows_of({"Deletion": {"lime": lime, "gradlime": gradlime, "ig": ig}})
    rows = {r["method"]: r for r in compare(scores, ["lime", "gradlime", "ig"], ["Deletion"], "lime", seed=0)}
    assert set(rows) == {"gradlime", "ig"}
    g, i = rows["gradlime"], rows["ig"]
    assert g["baseline"] == "lime" and g["direction"] == "lower" and g["n_pairs"] == 8 and i["n_pairs"] == 7
    assert g["mean_diff"] == pytest.approx(-0.085)
    assert g["ci_low"] <= g["mean_diff"] <= g["ci_high"] < 0
    differences = np.array(ig) - np.array(lime)
    assert i["mean_diff"] == pytest.approx(np.nanmean(differences))
    assert g["wilcoxon_p"] == stats.wilcoxon(np.array(gradlime) - np.array(lime)).pvalue == 2 / 2**8
    assert i["wilcoxon_p"] == stats.wilcoxon(differences[~np.isnan(differences)]).pvalue
    assert [g["p_holm"], i["p_holm"]] == pytest.approx(holm([g["wilcoxon_p"], i["wilcoxon_p"]]))
    assert g["significant"] and g["better"] == "method"  # lower Deletion: better
    assert not i["significant"] and i["better"] == ""
    # The same differences on a higher-is-better metric: gradlime is significantly worse.
    flipped = compare(rows_of({"Insertion": {"lime": lime, "gradlime": gradlime}}), ["lime", "gradlime"],
                      ["Insertion"], "lime")  # fmt: skip
    assert flipped[0]["significant"] and flipped[0]["better"] == "baseline"


def test_the_paired_figure_shows_one_dot_per_image_pair_and_the_interval(tmp_path):
    """comparison.png: a panel per metric, a row per method but the baseline, a dot per image both define (ig's
    NaN image has none), and the mean difference with its interval at comparison.csv's values."""
    lime = [0.50, 0.42, 0.61, 0.38, 0.55, 0.47, 0.66, 0.52]
    gradlime = [v - 0.1 + 0.01 * i for i, v in enumerate(lime)]
    ig = [0.52, 0.40, 0.63, 0.36, 0.57, float("nan"), 0.64, 0.53]
    scores = rows_of({"Deletion": {"lime": lime, "gradlime": gradlime, "ig": ig},
                      "Insertion": {"lime": lime, "gradlime": ig, "ig": gradlime}})  # fmt: skip
    methods, metrics = ["lime", "gradlime", "ig"], ["Deletion", "Insertion"]
    comparison = compare(scores, methods, metrics, "lime")
    fig = paired_figure(scores, comparison, methods, metrics, "lime")
    panels = [axis for axis in fig.axes if axis.axison]
    assert len(panels) == 2 and "left of 0 favours" in panels[0].get_title()
    assert "right of 0 favours" in panels[1].get_title()
    dots = [collection.get_offsets() for collection in panels[0].collections]
    assert [len(d) for d in dots] == [8, 7]
    np.testing.assert_allclose(np.sort(dots[0][:, 0]), np.sort(np.array(gradlime) - np.array(lime)))
    bar = next(row for row in comparison if row["method"] == "gradlime" and row["metric"] == "Deletion")
    lines = [line.get_xdata() for line in panels[0].lines if len(line.get_xdata()) == 2]
    assert list(lines[0]) == pytest.approx([bar["ci_low"], bar["ci_high"]])
    write_summary(tmp_path, scores, methods, metrics, "three methods")
    assert (tmp_path / "comparison.png").stat().st_size > 0


def test_best_is_marked_only_when_its_lead_over_every_other_is_significant():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, 10)
    # a above b and c on every image (distinct differences: no ties, so scipy's exact test, not its slow
    # permutation test)
    lead = {"a": base + 0.2 + rng.uniform(0, 0.01, 10), "b": base + 0.1 + rng.normal(0, 0.01, 10), "c": base}
    table = summarise(rows_of({"Insertion": lead}), ["a", "b", "c"], ["Insertion"])
    assert [c["method"] for c in table if c["best"]] == ["a"]
    # a's mean is still the best, but it is above b on only 6 of 10 images: not significant, none marked.
    close = {**lead, "b": base + 0.2 + np.array([-0.05, 0.04] * 5) + 0.001}
    close["a"] = base + 0.2 + np.array([0.05, -0.03] * 5) + rng.uniform(0, 0.001, 10)
    means = {m: float(np.mean(v)) for m, v in close.items()}
    assert max(means, key=means.get) == "a"
    table = summarise(rows_of({"Insertion": close}), ["a", "b", "c"], ["Insertion"])
    assert not any(c["best"] for c in table)
    assert significant_best({m: dict(enumerate(v)) for m, v in close.items()}, means, "higher", 0) is None
    # A tie for the best mean marks none; so does a single method.
    assert significant_best({"a": {0: 1.0}, "b": {0: 1.0}}, {"a": 1.0, "b": 1.0}, "higher", 0) is None
    assert significant_best({"a": {0: 1.0}}, {"a": 1.0}, "lower", 0) is None


def test_one_image_still_gives_a_summary_without_intervals(tmp_path):
    scores = rows_of({"Deletion": {"lime": [0.4], "gradlime": [0.3]}})
    table = write_summary(tmp_path, scores, ["lime", "gradlime"], ["Deletion"], "one image")
    assert [c["n"] for c in table] == [1, 1] and all(math.isnan(c["ci_low"]) for c in table)
    assert not any(c["best"] for c in table)  # one image: no lead is significant (p = 1)
    summary = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert summary[0]["ci_low"] == "nan" and summary[0]["mean"] == "0.4"
    (row,) = csv.DictReader(open(tmp_path / "comparison.csv"))
    assert row["n_pairs"] == "1" and float(row["mean_diff"]) == pytest.approx(-0.1)
    assert row["ci_low"] == "nan" and row["wilcoxon_p"] == "1.0" and row["significant"] == "False"
    text = (tmp_path / "summary.md").read_text()
    assert "| lime | 0.4000 |" in text and "| gradlime | -0.1000 p=1 |" in text
    assert (tmp_path / "summary.png").exists()


def test_a_cells_interval_does_not_depend_on_the_other_methods():
    values = {"lime": [0.1, 0.5, 0.3, 0.7], "a": [0.2, 0.4, 0.9, 0.6]}
    alone = summarise(rows_of({"IROF": {"a": values["a"]}}), ["a"], ["IROF"], seed=5)
    both = summarise(rows_of({"IROF": values}), ["lime", "a"], ["IROF"], seed=5)
    assert (alone[0]["ci_low"], alone[0]["ci_high"]) == (both[1]["ci_low"], both[1]["ci_high"])


def test_the_baseline_choice():
    assert choose_baseline(["gradlime", "lime"], None) == ("lime", "")
    baseline, note = choose_baseline(["gradcam", "ig"], None)
    assert baseline == "gradcam" and "lime was not run" in note
    assert choose_baseline(["gradcam", "ig"], "ig") == ("ig", "")
    with pytest.raises(UserInputError, match="--baseline lime: not among the methods"):
        choose_baseline(["gradcam", "ig"], "lime")


def test_paired_uses_only_images_both_have():
    result = paired({"x": 1.0, "y": 2.0, "z": float("nan")}, {"y": 1.5, "z": 0.0, "w": 3.0}, 0)
    assert result.n_pairs == 1 and result.mean_diff == 0.5 and math.isnan(result.ci_low)
