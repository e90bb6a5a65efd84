"""The tables and the figure of a stability run, from its rows alone (so ``--summarize`` and the union of shards
give exactly what one run does): summary.csv/.md, forwards_to_match.csv/.md, curves.png/.pdf.

Per image, method and budget: the row measures averaged over seeds, and the stability measures across seeds
(top-k Jaccard and Kendall's tau, mean over pairs of seeds). Per method and budget: the mean over images (images
sorted by key; NaN values left out, their count kept).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from cnnxai.benchmark.store import stored_identity  # noqa: E402
from cnnxai.benchmark.summary import _number  # noqa: E402
from cnnxai.outputs import atomic_savefig, atomic_write_text  # noqa: E402
from cnnxai.stability.measures import kendall_stability, top_k_stability, top_k_undefined  # noqa: E402
from cnnxai.stability.rows import REFERENCE, load_rows  # noqa: E402
from cnnxai.stability.specs import AUTO  # noqa: E402

# (column, title, direction): the quality measures, in the order of the tables and the figure's panels.
MEASURES = (
    ("top_k_stability", "top-k stability (Jaccard across seeds)", "higher"),
    ("kendall_across_seeds", "Kendall's tau across seeds", "higher"),
    ("jaccard_vs_reference", "top-k Jaccard vs reference", "higher"),
    ("kendall_vs_reference", "Kendall's tau vs reference", "higher"),
    ("deletion_auc", "deletion AUC", "lower"),
    ("insertion_auc", "insertion AUC", "higher"),
    ("r2", "weighted R² of the surrogate", "higher"),
)
ROW_MEASURES = ("jaccard_vs_reference", "kendall_vs_reference", "deletion_auc", "insertion_auc", "r2", "forwards",
                "seconds")  # fmt: skip
SUMMARY_COLUMNS = ("method", "budget", "forwards", "seconds", *(m for m, _, _ in MEASURES), "images")
PANELS = (
    "top_k_stability",
    "kendall_across_seeds",
    "jaccard_vs_reference",
    "deletion_auc",
    "insertion_auc",
    "r2",
)
MATCH_COLUMNS = ("method", "stability_forwards", "stability_ratio", "deletion_forwards", "deletion_ratio")
NOT_REACHED = "not reached"
ARROWS = {"higher": "↑", "lower": "↓"}


def forwards_text(value: float) -> str:
    """Forwards per explanation for a table: an integer as such (a grid N), a mean with one decimal."""
    if math.isnan(value):
        return "–"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _float(text: str) -> float:
    return float(text) if text != "" else math.nan


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def per_image(rows: list[dict], top_k: int) -> dict[tuple[str, str, str], dict[str, float]]:
    """(method, budget, image) -> each measure: row measures averaged over seeds, stability across seeds."""
    grouped: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for row in rows:
        grouped[(row["method"], row["budget"], row["image"])].append(row)
    measures = {}
    for key, group in grouped.items():
        group = sorted(group, key=lambda row: int(row["seed"]))
        cell = {name: _mean([_float(row[name]) for row in group]) for name in ROW_MEASURES}
        explained = [
            np.array(json.loads(row["attributions"]), dtype=np.float64)
            for row in group
            if row["attributions"]
        ]
        defined = len(explained) >= 2 and not top_k_undefined(len(explained[0]), top_k)
        cell["top_k_stability"] = top_k_stability(explained, top_k) if defined else math.nan
        cell["kendall_across_seeds"] = kendall_stability(explained) if len(explained) >= 2 else math.nan
        measures[key] = cell
    return measures


def _budget_order(budget: str) -> tuple[int, float]:
    return (1, math.inf) if budget == AUTO else (0, float(budget))


def summarise(rows: list[dict], methods: Sequence[str], top_k: int) -> list[dict]:
    """One cell per method x budget (budgets ascending, 'auto' last; the reference last): the mean over images of
    every measure, mean forwards and seconds, and the number of images."""
    measures = per_image(rows, top_k)
    by_cell: dict[tuple[str, str], list[tuple[str, dict]]] = defaultdict(list)
    for (method, budget, image), cell in measures.items():
        by_cell[(method, budget)].append((image, cell))
    table = []
    for method in [*methods, REFERENCE]:
        for budget in sorted({b for m, b in by_cell if m == method}, key=_budget_order):
            images = [cell for _, cell in sorted(by_cell[(method, budget)], key=lambda item: item[0])]
            entry = {"method": method, "budget": budget, "images": len(images)}
            for name in ("forwards", "seconds", *(m for m, _, _ in MEASURES)):
                entry[name] = _mean([cell[name] for cell in images])
            table.append(entry)
    return table


def forwards_to_match(
    table: list[dict], methods: Sequence[str], match_samples: int
) -> tuple[list[dict], dict]:
    """For each method, the forwards it needs to be as good as plain lime at ``match_samples`` on top-k stability
    (>=) and on deletion AUC (<=): the smallest budget whose image mean is that good (an 'auto' method: its mean
    forwards if it is that good), or 'not reached'; with the ratio match_samples / forwards. Returns the rows and
    the baseline cell (empty when the table lacks it)."""
    cells = {(c["method"], c["budget"]): c for c in table}
    baseline = cells.get(("lime", str(match_samples)), {})
    rows = []
    for method in methods:
        budgets = sorted(
            (c for c in table if c["method"] == method), key=lambda c: _budget_order(c["budget"])
        )
        row = {"method": method}
        for prefix, measure, better in (("stability", "top_k_stability", np.greater_equal),
                                        ("deletion", "deletion_auc", np.less_equal)):  # fmt: skip
            target = baseline.get(measure, math.nan)
            reached = next(
                (c for c in budgets if not math.isnan(c[measure]) and better(c[measure], target)), None
            )
            if reached is None or math.isnan(target):
                row[f"{prefix}_forwards"], row[f"{prefix}_ratio"] = NOT_REACHED, ""
            else:
                forwards = reached["forwards"]
                row[f"{prefix}_forwards"] = forwards_text(forwards)
                row[f"{prefix}_ratio"] = f"{match_samples / forwards:.2f}"
        rows.append(row)
    return rows, baseline


def _csv(columns: Sequence[str], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue()


def summary_markdown(table: list[dict], note: str) -> str:
    head = (
        ["method", "N", "forwards", "s/expl."]
        + [f"{title} {ARROWS[d]}" for _, title, d in MEASURES]
        + ["images"]
    )
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for cell in table:
        values = [forwards_text(cell["forwards"]), _number(cell["seconds"], 3)]
        values += [_number(cell[m], 3) for m, _, _ in MEASURES]
        lines.append(
            f"| {cell['method']} | {cell['budget']} | " + " | ".join(values) + f" | {cell['images']} |"
        )
    legend = (
        "Means over images (each image: the mean over seeds; stability: the mean over pairs of seeds); – undefined. "
        "forwards: perturbed images per explanation (N, or what an auto method chose); s/expl.: wall time of the "
        "call, which shared work (the neighbourhood of a larger N, the CAMs) makes cheaper for later calls."
    )
    return f"{note}\n\n" + "\n".join(lines) + f"\n\n{legend}\n"


def match_markdown(rows: list[dict], baseline: dict, match_samples: int) -> str:
    if baseline:
        what = (f"plain lime at N = {match_samples}: top-k stability {_number(baseline['top_k_stability'], 3)}, "
                f"deletion AUC {_number(baseline['deletion_auc'], 3)}")  # fmt: skip
    else:
        what = f"plain lime at N = {match_samples} (not in these rows)"
    lines = [
        f"Forwards per explanation needed to match {what}; ratio = {match_samples} / forwards (higher: cheaper).",
        "",
        "| method | forwards for top-k stability | ratio | forwards for deletion AUC | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(row[c] or "–" for c in MATCH_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def curves_figure(table: list[dict], methods: Sequence[str]):
    """One panel per quality measure against forwards per explanation (log x): a line per grid method, a single
    marker per auto method, the reference as a dotted line where it has a value."""
    titles = {m: (t, d) for m, t, d in MEASURES}
    fig, axes = plt.subplots(2, 3, figsize=(12.5, 7.2), constrained_layout=True)
    palette = plt.get_cmap("tab10").colors  # 10 distinct colours, then dashed lines
    ticks = sorted(
        {
            c["forwards"]
            for c in table
            if c["budget"] != AUTO and c["method"] != REFERENCE and not math.isnan(c["forwards"])
        }
    )
    reference = next((c for c in table if c["method"] == REFERENCE), None)
    for axis, measure in zip(axes.ravel(), PANELS, strict=True):
        for index, method in enumerate(methods):
            colour = palette[index % 10]
            cells = [c for c in table if c["method"] == method and not math.isnan(c[measure])]
            auto = [c for c in cells if c["budget"] == AUTO]
            grid = [c for c in cells if c["budget"] != AUTO]
            if grid:
                axis.plot([c["forwards"] for c in grid], [c[measure] for c in grid], marker="o", ms=3.5, lw=1.3,
                          color=colour, ls="-" if index < 10 else "--", label=method)  # fmt: skip
            for cell in auto:
                axis.plot([cell["forwards"]], [cell[measure]], marker="*", ms=11, ls="none", color=colour,
                          markeredgecolor="black", markeredgewidth=0.4, label=method)  # fmt: skip
        if reference is not None and not math.isnan(reference[measure]):
            axis.axhline(reference[measure], color="0.35", ls=":", lw=1.1,
                         label=f"reference (lime, N = {reference['budget']})")  # fmt: skip
        title, direction = titles[measure]
        axis.set_title(f"{title} ({ARROWS[direction]} {direction} is better)", fontsize=10)
        axis.set_xscale("log")
        if ticks:  # the grid's N as plain numbers, not powers of ten
            axis.set_xticks(ticks, [forwards_text(t) for t in ticks], fontsize=8)
            axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("model forwards per explanation")
        axis.set_ylabel(title)
        axis.grid(True, which="both", lw=0.3, alpha=0.5)
    handles, labels = {}, []
    for axis in axes.ravel():
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if labels:
        fig.legend([handles[label] for label in labels], labels, loc="outside lower center",
                   ncol=min(4, len(labels)), fontsize=8, title="method (★: chooses its own N)", title_fontsize=8)  # fmt: skip
    return fig


def write_stability_summary(folder: Path) -> Path:
    """summary.csv/.md, forwards_to_match.csv/.md and curves.png/.pdf of the run in ``folder`` (itself and its
    shards), from its rows and manifests alone; returns summary.md."""
    identity = stored_identity(folder)
    settings = identity["settings"]
    methods = [method["label"] for method in settings["methods"]]
    rows = load_rows(folder)
    table = summarise(rows, methods, int(settings["top_k"]))
    images = len({row["image"] for row in rows})
    note = (
        f"MyStability: {images} of {identity['data']['images']} images; {len(methods)} methods, "
        f"{len(settings['seeds'])} seeds, top-k = {settings['top_k']}; reference: plain lime at N = "
        f"{settings['reference_samples']} (another seed)."
    )
    atomic_write_text(folder / "summary.csv", _csv(SUMMARY_COLUMNS, table))
    atomic_write_text(folder / "summary.md", summary_markdown(table, note))
    match_rows, baseline = forwards_to_match(table, methods, int(settings["match_samples"]))
    atomic_write_text(folder / "forwards_to_match.csv", _csv(MATCH_COLUMNS, match_rows))
    atomic_write_text(
        folder / "forwards_to_match.md", match_markdown(match_rows, baseline, int(settings["match_samples"]))
    )
    fig = curves_figure(table, methods)
    atomic_savefig(fig, folder / "curves.png", dpi=300)
    atomic_savefig(fig, folder / "curves.pdf")
    plt.close(fig)
    return folder / "summary.md"
