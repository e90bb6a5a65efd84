"""Tables and plots of a benchmark: summary.csv / summary.md / summary.png, curves_mean.csv / curves.png.

Everything is computed from the rows of ``scores.csv`` and ``curves.csv`` alone (of one run, or of the union
of its shards), sorted by method, metric and image before any sum, so the union of shards summarises to
exactly what one full run does.
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

from cnnxai.benchmark.store import CURVE_COLUMNS, SCORE_COLUMNS, read_rows  # noqa: E402
from cnnxai.metrics import METRICS  # noqa: E402
from cnnxai.outputs import atomic_savefig, atomic_write_text  # noqa: E402

SUMMARY_COLUMNS = ("method", "metric", "direction", "mean", "std", "n", "n_nan", "best")
ARROWS = {"higher": "↑", "lower": "↓"}


def result_folders(folder: Path, rows: str = "scores.csv") -> list[Path]:
    """The folders holding rows (file ``rows``) of one run: ``folder`` itself and each ``folder/shards/*``."""
    found = [folder] if (folder / rows).exists() else []
    shards = folder / "shards"
    if shards.is_dir():
        found += sorted(p for p in shards.iterdir() if (p / rows).exists())
    return found


def load_rows(folders: Sequence[Path]) -> tuple[list[dict], list[dict]]:
    scores, curves = [], []
    for folder in folders:
        scores += read_rows(folder / "scores.csv", SCORE_COLUMNS)
        curves += read_rows(folder / "curves.csv", CURVE_COLUMNS)
    return scores, curves


def summarise(
    scores: list[dict],
    methods: Sequence[str],
    metrics: Sequence[str],
    directions: Mapping[str, str] | None = None,
) -> list[dict]:
    """Mean, sample std (ddof 1), number of defined values and of NaNs per method x metric; ``best`` marks the
    method(s) with the best mean by the metric's direction ('higher' or 'lower': ``directions[metric]``, by
    default the direction declared in :data:`cnnxai.metrics.METRICS`)."""
    values: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
    for row in scores:
        values[(row["method"], row["metric"])].append((row["image"], float(row["value"])))
    table = []
    for metric in metrics:
        direction = _direction(metric, directions)
        cells = []
        for method in methods:
            series = np.array([v for _, v in sorted(values.get((method, metric), []))], dtype=np.float64)
            finite = series[~np.isnan(series)]
            cells.append({
                "method": method, "metric": metric, "direction": direction,
                "mean": float(finite.mean()) if len(finite) else float("nan"),
                "std": float(finite.std(ddof=1)) if len(finite) > 1 else float("nan"),
                "n": len(finite), "n_nan": int(np.isnan(series).sum()),
            })  # fmt: skip
        means = [c["mean"] for c in cells if not math.isnan(c["mean"])]
        target = (max(means) if direction == "higher" else min(means)) if means else None
        for cell in cells:
            cell["best"] = target is not None and cell["mean"] == target
        table.extend(cells)
    return table


def _direction(metric: str, directions: Mapping[str, str] | None) -> str:
    return directions[metric] if directions is not None else METRICS[metric].direction


def _number(value: float, digits: int = 4) -> str:
    """Fixed-point text for a table cell: no exponents, fewer decimals for large values (counts)."""
    if math.isnan(value):
        return "–"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.{2 if abs(value) >= 100 else digits}f}"


def _table_direction(table: list[dict], metric: str) -> str:
    """The direction :func:`summarise` recorded for ``metric``."""
    return next(cell["direction"] for cell in table if cell["metric"] == metric)


def usual_count(table: list[dict]) -> int:
    """The most frequent number of defined values per cell (shown once in the legend, not in every cell)."""
    counts = [cell["n"] for cell in table]
    return max(set(counts), key=counts.count) if counts else 0


def cell_text(cell: Mapping, usual: int) -> str:
    """'mean ± std' of one summary cell, with its n (and NaNs) when n is not ``usual``: the text of a cell in
    summary.md and in report.html, so both show the same numbers."""
    text = _number(cell["mean"])
    if not math.isnan(cell["std"]):
        text += f" ± {_number(cell['std'], 3)}"
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


def write_summary(
    folder: Path, table: list[dict], methods: Sequence[str], metrics: Sequence[str], note: str
) -> None:
    """summary.csv, summary.md (with ``note`` above the table) and summary.png in ``folder``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for cell in table:
        writer.writerow({**cell, "mean": repr(cell["mean"]), "std": repr(cell["std"])})
    atomic_write_text(folder / "summary.csv", buffer.getvalue())
    legend = (
        f"↑ higher is better, ↓ lower is better; mean ± sample std over n = {usual_count(table)} images unless "
        "shown (NaN: undefined, the reason is in scores.csv); the best of each column in bold."
    )
    atomic_write_text(
        folder / "summary.md", f"{note}\n\n{markdown_table(table, methods, metrics)}\n{legend}\n"
    )
    fig = summary_figure(table, methods, metrics)
    atomic_savefig(fig, folder / "summary.png")
    plt.close(fig)


def summary_figure(table: list[dict], methods: Sequence[str], metrics: Sequence[str]):
    """One horizontal bar chart per metric: mean ± std per method, the best bar in a darker colour."""
    cells = {(c["method"], c["metric"]): c for c in table}
    columns = min(len(metrics), 4)
    rows = -(-len(metrics) // columns)
    height = 0.8 + 0.28 * len(methods)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, height * rows), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    for axis, metric in zip(axes.ravel(), metrics, strict=False):
        means = np.array([cells[(m, metric)]["mean"] for m in methods])
        stds = np.nan_to_num(np.array([cells[(m, metric)]["std"] for m in methods]))
        colours = ["#1f4e9a" if cells[(m, metric)]["best"] else "#9bb7e0" for m in methods]
        positions = np.arange(len(methods))
        axis.barh(positions, np.nan_to_num(means), xerr=stds, color=colours, error_kw={"lw": 0.8})
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
