"""Tables and plots of a benchmark: summary.csv / summary.md / summary.png, comparison.csv / comparison.png,
curves_mean.csv / curves.png.

Everything is computed from the rows of ``scores.csv`` and ``curves.csv`` alone (of one run, or of the union
of its shards), sorted by method, metric and image before any sum, so the union of shards summarises to
exactly what one full run does. The statistics (bootstrap intervals, paired comparisons with the baseline, the
significant best) are those of :mod:`cnnxai.benchmark.statistics`, seeded with the run's seed.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cnnxai.benchmark.statistics import (  # noqa: E402
    ALPHA,
    CONFIDENCE,
    Scores,
    bootstrap_ci,
    choose_baseline,
    compare_to_baseline,
    significant_best,
)
from cnnxai.metrics import METRICS  # noqa: E402
from cnnxai.outputs import atomic_savefig, atomic_write_text  # noqa: E402

SUMMARY_COLUMNS = ("method", "metric", "direction", "mean", "ci_low", "ci_high", "std", "n", "n_nan", "best")
COMPARISON_COLUMNS = ("method", "metric", "direction", "baseline", "n_pairs", "mean_diff", "ci_low", "ci_high",
                      "wilcoxon_p", "p_holm", "significant", "better")  # fmt: skip
ARROWS = {"higher": "↑", "lower": "↓"}


def image_scores(scores: list[dict]) -> dict[tuple[str, str], Scores]:
    """(method, metric) -> image -> value (NaN kept: undefined) of score rows (scores.csv's or Localisation's)."""
    values: dict[tuple[str, str], dict] = defaultdict(dict)
    for row in scores:
        values[(row["method"], row["metric"])][row["image"]] = float(row["value"])
    return values


def summarise(
    scores: list[dict],
    methods: Sequence[str],
    metrics: Sequence[str],
    directions: Mapping[str, str] | None = None,
    seed: int = 0,
) -> list[dict]:
    """Per method x metric: the mean over images, its bootstrap 95% interval (ci_low, ci_high; NaN below two
    values), the sample std (ddof 1), the number of defined values (n) and of NaNs. ``best`` marks at most one
    method per metric: the best mean by the metric's direction ('higher' or 'lower': ``directions[metric]``,
    by default the direction declared in :data:`cnnxai.metrics.METRICS`), and only when its lead over every
    other method is significant (:func:`~cnnxai.benchmark.statistics.significant_best`). ``seed``: of the
    bootstrap."""
    values = image_scores(scores)
    table = []
    for metric in metrics:
        direction = _direction(metric, directions)
        cells = []
        for method in methods:
            by_image = values.get((method, metric), {})
            series = np.array([by_image[key] for key in sorted(by_image)], dtype=np.float64)
            finite = series[~np.isnan(series)]
            low, high = bootstrap_ci(finite, seed)
            cells.append({
                "method": method, "metric": metric, "direction": direction,
                "mean": float(finite.mean()) if len(finite) else float("nan"), "ci_low": low, "ci_high": high,
                "std": float(finite.std(ddof=1)) if len(finite) > 1 else float("nan"),
                "n": len(finite), "n_nan": int(np.isnan(series).sum()),
            })  # fmt: skip
        best = significant_best(
            {m: values.get((m, metric), {}) for m in methods},
            {c["method"]: c["mean"] for c in cells}, direction, seed,
        )  # fmt: skip
        for cell in cells:
            cell["best"] = cell["method"] == best
        table.extend(cells)
    return table


def compare(
    scores: list[dict],
    methods: Sequence[str],
    metrics: Sequence[str],
    baseline: str,
    directions: Mapping[str, str] | None = None,
    seed: int = 0,
) -> list[dict]:
    """comparison.csv's rows: per metric, each method but ``baseline`` against it on the images both have
    (:func:`~cnnxai.benchmark.statistics.compare_to_baseline`; Holm over the comparisons of each metric)."""
    values = image_scores(scores)
    rows = []
    for metric in metrics:
        direction = _direction(metric, directions)
        by_method = {m: values.get((m, metric), {}) for m in methods}
        for row in compare_to_baseline(by_method, methods, baseline, direction, seed):
            rows.append({**row, "metric": metric, "direction": direction})
    return rows


def _direction(metric: str, directions: Mapping[str, str] | None) -> str:
    return directions[metric] if directions is not None else METRICS[metric].direction


def _number(value: float, digits: int = 4) -> str:
    """Fixed-point text for a table cell: no exponents, fewer decimals for large values (counts)."""
    if math.isnan(value):
        return "–"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    text = f"{value:.{2 if abs(value) >= 100 else digits}f}"
    return text.lstrip("-") if float(text) == 0 else text  # no '-0.0000' for a tiny negative value


def _table_direction(table: list[dict], metric: str) -> str:
    """The direction :func:`summarise` recorded for ``metric``."""
    return next(cell["direction"] for cell in table if cell["metric"] == metric)


def usual_count(table: list[dict]) -> int:
    """The most frequent number of defined values per cell (shown once in the legend, not in every cell)."""
    counts = [cell["n"] for cell in table]
    return max(set(counts), key=counts.count) if counts else 0


def interval_text(low: float, high: float, sign: bool = False, digits: int = 4) -> str:
    """' [low, high]' of a bootstrap interval ('' when it is undefined); ``sign``: with + on positive bounds."""
    if math.isnan(low) or math.isnan(high):
        return ""
    plus = "+" if sign else ""
    return f" [{plus if low > 0 else ''}{_number(low, digits)}, {plus if high > 0 else ''}{_number(high, digits)}]"


def cell_text(cell: Mapping, usual: int) -> str:
    """'mean [ci_low, ci_high]' of one summary cell (no interval below two values), with its n (and NaNs) when
    n is not ``usual``: the text of a cell in summary.md and in report.html, so both show the same numbers."""
    text = _number(cell["mean"]) + interval_text(cell["ci_low"], cell["ci_high"])
    if cell["n"] != usual or cell["n_nan"]:
        text += f" (n={cell['n']}" + (f", {cell['n_nan']} NaN" if cell["n_nan"] else "") + ")"
    return text


def markdown_table(table: list[dict], methods: Sequence[str], metrics: Sequence[str]) -> str:
    """Methods x metrics, 'mean ± std', the best of each column in bold; n shown where it is not the usual."""
    cells = {(c["method"], c["metric"]): c for c in table}
    usual = usual_count(table)
    lines = [
        "| method | " + " | ".join(f"{m} {ARROWS[_table_direction(table, m)]}" for m in metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for method in methods:
        row = []
        for metric in metrics:
            cell = cells[(method, metric)]
            text = cell_text(cell, usual)
            row.append(f"**{text}**" if cell["best"] else text)
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def comparison_text(row: Mapping, usual: int) -> str:
    """One comparison as text: 'Δ [ci_low, ci_high] p=p_holm', ' better' or ' worse' when significant, n_pairs
    when it is not ``usual``: a cell of summary.md's comparison table and of report.html's."""
    if row["n_pairs"] == 0:
        return "–"
    diff = row["mean_diff"]
    text = ("+" if diff > 0 else "") + _number(diff) + interval_text(row["ci_low"], row["ci_high"], sign=True)
    text += f" p={row['p_holm']:.2g}"
    if row["better"]:
        text += " better" if row["better"] == "method" else " worse"
    if row["n_pairs"] != usual:
        text += f" (n={row['n_pairs']})"
    return text


def comparison_table(comparison: list[dict], methods: Sequence[str], metrics: Sequence[str]) -> str:
    """The comparisons as methods (but the baseline) x metrics, each cell :func:`comparison_text`, the
    significant ones in bold."""
    rows = {(r["method"], r["metric"]): r for r in comparison}
    usual = usual_count([{"n": r["n_pairs"]} for r in comparison])
    directions = {r["metric"]: r["direction"] for r in comparison}
    lines = [
        "| method | " + " | ".join(f"{m} {ARROWS[directions[m]]}" for m in metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for method in dict.fromkeys(r["method"] for r in comparison):
        texts = [comparison_text(rows[(method, m)], usual) for m in metrics]
        marked = [
            f"**{t}**" if rows[(method, m)]["significant"] else t for t, m in zip(texts, metrics, strict=True)
        ]
        lines.append(f"| {method} | " + " | ".join(marked) + " |")
    return "\n".join(lines) + "\n"


def statistics_legend(usual: int) -> str:
    """What summary.md's and report.html's tables show (one text for both)."""
    return (
        f"↑ higher is better, ↓ lower is better; mean [bootstrap {CONFIDENCE:.0%} interval] over n = {usual} images "
        "unless shown (no interval for one image; NaN: undefined, the reason is in scores.csv). Bold: the best "
        "mean, marked only when it is significantly better than every other method (paired Wilcoxon, Holm, "
        f"p < {ALPHA}); none marked when no lead is significant."
    )


def comparison_legend(baseline: str) -> str:
    return (
        f"Paired with {baseline} on the images both have: mean difference (method − {baseline}) [bootstrap "
        f"{CONFIDENCE:.0%} interval], Wilcoxon signed-rank p Holm-corrected over the comparisons of each metric; "
        f"bold, with better or worse by the metric's direction, when p < {ALPHA}; – no image where both are "
        "defined. All columns in comparison.csv."
    )


def csv_text(columns: Sequence[str], rows: list[dict]) -> str:
    """A CSV file's text: ``columns`` as the header, floats as repr (every digit), bools as True/False."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue()


def write_summary(
    folder: Path,
    scores: list[dict],
    methods: Sequence[str],
    metrics: Sequence[str],
    note: str,
    directions: Mapping[str, str] | None = None,
    seed: int = 0,
    baseline: str | None = None,
) -> list[dict]:
    """summary.csv, summary.md (``note`` above the tables), summary.png and comparison.csv in ``folder``, from
    score rows (image, method, metric, value). ``baseline``: the method every other is compared with (None:
    lime, or the first method when lime was not run, said in summary.md; one not among ``methods`` is a
    :class:`UserInputError`, raised before anything is written). ``seed``: of every bootstrap. Returns the
    summary table."""
    baseline, baseline_note = choose_baseline(methods, baseline)
    table = summarise(scores, methods, metrics, directions, seed)
    comparison = compare(scores, methods, metrics, baseline, directions, seed) if len(methods) > 1 else []
    atomic_write_text(folder / "summary.csv", csv_text(SUMMARY_COLUMNS, table))
    atomic_write_text(folder / "comparison.csv", csv_text(COMPARISON_COLUMNS, comparison))
    text = f"{note}\n\n{markdown_table(table, methods, metrics)}\n{statistics_legend(usual_count(table))}\n"
    if comparison:
        text += (
            f"\nPaired comparison with {baseline}"
            + (f" ({baseline_note})" if baseline_note else "")
            + f":\n\n{comparison_table(comparison, methods, metrics)}\n{comparison_legend(baseline)}\n"
        )
    atomic_write_text(folder / "summary.md", text)
    fig = summary_figure(table, methods, metrics)
    atomic_savefig(fig, folder / "summary.png")
    plt.close(fig)
    if comparison:
        fig = paired_figure(scores, comparison, methods, metrics, baseline)
        atomic_savefig(fig, folder / "comparison.png")
        plt.close(fig)
    return table


def paired_figure(
    scores: list[dict], comparison: list[dict], methods: Sequence[str], metrics: Sequence[str], baseline: str
):
    """One panel per metric: for each method but ``baseline``, its paired differences (method - baseline), one
    dot per image both define (spread vertically by a fixed jitter), with the mean difference and its bootstrap
    interval from ``comparison`` (comparison.csv's rows) as a black bar, dark when significant (Holm). The
    metric's direction says which side of 0 favours the method."""
    values = image_scores(scores)
    rows = {(r["method"], r["metric"]): r for r in comparison}
    others = [m for m in methods if m != baseline]
    columns = min(len(metrics), 4)
    grid = -(-len(metrics) // columns)
    height = 0.9 + 0.36 * len(others)
    fig, axes = plt.subplots(grid, columns, figsize=(4.2 * columns, height * grid), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    jitter = np.random.default_rng(0)
    for axis, metric in zip(axes.ravel(), metrics, strict=False):
        reference = values.get((baseline, metric), {})
        for position, method in enumerate(others):
            mine = values.get((method, metric), {})
            keys = sorted(k for k in mine if k in reference and not (math.isnan(mine[k]) or math.isnan(reference[k])))
            differences = np.array([mine[k] - reference[k] for k in keys])
            axis.scatter(differences, position + jitter.uniform(-0.22, 0.22, len(keys)), s=9, alpha=0.55,
                         color="#9bb7e0", edgecolors="none")  # fmt: skip
            row = rows.get((method, metric))
            if row is None or not np.isfinite(row["mean_diff"]):
                continue
            colour = "#1f4e9a" if row["significant"] else "#555555"
            low, high = row["ci_low"], row["ci_high"]
            if np.isfinite(low) and np.isfinite(high):
                axis.plot([low, high], [position, position], color=colour, lw=2.2)
            axis.plot([row["mean_diff"]], [position], marker="|", markersize=12, color=colour, mew=2)
        axis.axvline(0, color="black", lw=0.6)
        axis.set_yticks(np.arange(len(others)), [f"{m} − {baseline}" for m in others], fontsize=8)
        axis.set_ylim(len(others) - 0.5, -0.5)
        direction = next((r["direction"] for r in comparison if r["metric"] == metric), "higher")
        favours = "right" if direction == "higher" else "left"
        axis.set_title(f"{metric}: {favours} of 0 favours the method", fontsize=9)
        axis.tick_params(axis="x", labelsize=8)
    for axis in axes.ravel()[len(metrics) :]:
        axis.set_axis_off()
    return fig



def summary_figure(table: list[dict], methods: Sequence[str], metrics: Sequence[str]):
    """One horizontal bar chart per metric: the mean per method with its bootstrap interval, the significant
    best bar in a darker colour."""
    cells = {(c["method"], c["metric"]): c for c in table}
    columns = min(len(metrics), 4)
    rows = -(-len(metrics) // columns)
    height = 0.8 + 0.28 * len(methods)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, height * rows), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    for axis, metric in zip(axes.ravel(), metrics, strict=False):
        means = np.array([cells[(m, metric)]["mean"] for m in methods])
        low = np.array([cells[(m, metric)]["ci_low"] for m in methods])
        high = np.array([cells[(m, metric)]["ci_high"] for m in methods])
        # No interval: no bar; clipped at 0 (an interval of equal values can miss its mean by a rounding error).
        errors = np.maximum(np.nan_to_num(np.stack([means - low, high - means])), 0)
        colours = ["#1f4e9a" if cells[(m, metric)]["best"] else "#9bb7e0" for m in methods]
        positions = np.arange(len(methods))
        axis.barh(positions, np.nan_to_num(means), xerr=errors, color=colours, error_kw={"lw": 0.8})
        for position in positions[np.isnan(means)]:  # no defined value: say so rather than show an empty row
            axis.text(0, position, " undefined (NaN)", va="center", fontsize=7, color="#777777")
        axis.set_yticks(positions, methods, fontsize=8)
        axis.invert_yaxis()
        direction = _table_direction(table, metric)
        axis.set_title(f"{metric} ({ARROWS[direction]} {direction} is better)", fontsize=9)
        axis.tick_params(axis="x", labelsize=8)
        axis.axvline(0, color="black", lw=0.5)
    for axis in axes.ravel()[len(metrics) :]:
        axis.set_axis_off()
    return fig


def write_curves(folder: Path, curves: list[dict], methods: Sequence[str]) -> None:
    """curves_mean.csv (method, curve, step, fraction, mean, std, n) and curves.png from curves.csv rows."""
    grouped: dict[tuple[str, str], list[tuple[str, np.ndarray]]] = defaultdict(list)
    for row in curves:
        grouped[(row["method"], row["curve"])].append(
            (row["image"], np.array(row["values"].split(), dtype=float))
        )
    if not grouped:
        return
    kinds = [kind for kind in ("Deletion", "Insertion") if any(k == kind for _, k in grouped)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "curve", "step", "fraction", "mean", "std", "n"])
    fig, axes = plt.subplots(
        1, len(kinds), figsize=(6.8 * len(kinds), 4.2), squeeze=False, constrained_layout=True
    )
    palette = plt.get_cmap("tab20").colors  # distinct colours for up to 20 methods, dashed after that
    for axis, kind in zip(axes[0], kinds, strict=True):
        for index, method in enumerate(methods):
            series = [
                values for _, values in sorted(grouped.get((method, kind), []), key=lambda item: item[0])
            ]
            if not series or len({len(s) for s in series}) != 1:
                continue
            stacked = np.stack(series)
            mean = stacked.mean(axis=0)
            std = stacked.std(axis=0, ddof=1) if len(stacked) > 1 else np.full(len(mean), np.nan)
            fractions = np.linspace(0, 1, len(mean))
            for step, (f, m, s) in enumerate(zip(fractions, mean, std, strict=True)):
                writer.writerow(
                    [method, kind, step, repr(float(f)), repr(float(m)), repr(float(s)), len(stacked)]
                )
            auc = float((mean.sum() - mean[0] / 2 - mean[-1] / 2) / (len(mean) - 1))
            style = {"color": palette[index % 20], "ls": "-" if index < 20 else "--"}
            axis.plot(fractions, mean, lw=1.2, label=f"{method} ({auc:.3f})", **style)
        axis.set_xlabel("fraction of pixels " + ("deleted" if kind == "Deletion" else "inserted"))
        axis.set_ylabel("p(target), mean over images")
        better = "lower" if kind == "Deletion" else "higher"
        axis.set_title(f"{kind} (area in legend; {better} is better)")
        axis.set_xlim(0, 1)
        axis.legend(
            fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="method (area)", title_fontsize=7
        )
    atomic_write_text(folder / "curves_mean.csv", buffer.getvalue())
    atomic_savefig(fig, folder / "curves.png")
    plt.close(fig)
