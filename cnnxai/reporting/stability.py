"""MyStability.py as one library call (:func:`run_stability`), and the tables and the figure of a stability run,
from its rows alone (so ``--summarize`` and the union of shards
give exactly what one run does): summary.csv/.md, comparison.csv, forwards_to_match.csv/.md, curves.png/.pdf.

Per image, method and budget: the row measures averaged over seeds, and the stability measures across seeds
(top-k Jaccard and Kendall's tau, mean over pairs of seeds). Per method and budget: the mean over images (images
sorted by key; NaN values left out, their count kept) with its bootstrap 95% interval, and the paired comparison
of each quality measure with the baseline, plain lime at --match-samples (:mod:`cnnxai.benchmark.statistics`,
seeded with the run's seed).
"""

from __future__ import annotations

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

from cnnxai.benchmark.request import RunStatus  # noqa: E402
from cnnxai.benchmark.statistics import DEFAULT_BASELINE, bootstrap_ci, compare_to_baseline  # noqa: E402
from cnnxai.benchmark.store import clear_run, stored_identity  # noqa: E402
from cnnxai.devices import resolve_device  # noqa: E402
from cnnxai.distributed import worker_pool  # noqa: E402
from cnnxai.outputs import atomic_savefig, atomic_write_text  # noqa: E402
from cnnxai.reporting.summary import (  # noqa: E402
    ARROWS,
    COMPARISON_COLUMNS,
    _number,
    comparison_legend,
    comparison_text,
    csv_text,
    interval_text,
)
from cnnxai.stability.measures import kendall_stability, top_k_stability, top_k_undefined  # noqa: E402
from cnnxai.stability.request import StabilityRequest, stability_images, stability_run  # noqa: E402
from cnnxai.stability.rows import REFERENCE, load_rows  # noqa: E402
from cnnxai.stability.specs import AUTO  # noqa: E402

# What a stability run writes into its folder (``overwrite`` deletes these, and the shards).
RUN_FILES = ("rows.csv", "manifest.json", "summary.csv", "summary.md", "comparison.csv", "forwards_to_match.csv",
             "forwards_to_match.md", "curves.png", "curves.pdf")  # fmt: skip
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
INTERVAL_COLUMNS = tuple(f"{m}_{part}" for m, _, _ in MEASURES for part in ("ci_low", "ci_high", "n"))
SUMMARY_COLUMNS = ("method", "budget", "forwards", "seconds", *(m for m, _, _ in MEASURES), "images",
                   *INTERVAL_COLUMNS)  # fmt: skip
# comparison.csv: the benchmarks' columns, with the budget after the method.
STABILITY_COMPARISON_COLUMNS = ("method", "budget", *COMPARISON_COLUMNS[1:])
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


def _cells(measures: dict) -> dict[tuple[str, str], list[tuple[str, dict]]]:
    """(method, budget) -> its (image, measures) sorted by image."""
    by_cell: dict[tuple[str, str], list[tuple[str, dict]]] = defaultdict(list)
    for (method, budget, image), cell in measures.items():
        by_cell[(method, budget)].append((image, cell))
    return {key: sorted(cells, key=lambda item: item[0]) for key, cells in by_cell.items()}


def summarise(rows: list[dict], methods: Sequence[str], top_k: int, seed: int = 0) -> list[dict]:
    """One cell per method x budget (budgets ascending, 'auto' last; the reference last): the mean over images of
    every measure, mean forwards and seconds, and the number of images; for each quality measure also its
    bootstrap 95% interval (``<measure>_ci_low``/``_ci_high``, NaN below two defined values; ``seed``: of the
    bootstrap) and its number of defined values (``<measure>_n``)."""
    by_cell = _cells(per_image(rows, top_k))
    table = []
    for method in [*methods, REFERENCE]:
        for budget in sorted({b for m, b in by_cell if m == method}, key=_budget_order):
            images = [cell for _, cell in by_cell[(method, budget)]]
            entry = {"method": method, "budget": budget, "images": len(images)}
            for name in ("forwards", "seconds", *(m for m, _, _ in MEASURES)):
                entry[name] = _mean([cell[name] for cell in images])
            for name, _, _ in MEASURES:
                values = np.array([cell[name] for cell in images], dtype=np.float64)
                entry[f"{name}_ci_low"], entry[f"{name}_ci_high"] = bootstrap_ci(values, seed)
                entry[f"{name}_n"] = int(np.sum(~np.isnan(values)))
            table.append(entry)
    return table


def compare(
    rows: list[dict], table: list[dict], top_k: int, baseline: tuple[str, str], seed: int
) -> list[dict]:
    """comparison.csv's rows: for each quality measure, every other cell (method, N) of ``table`` against the
    ``baseline`` cell, paired on images (Holm over the comparisons of each measure); [] without that cell."""
    by_cell = _cells(per_image(rows, top_k))
    if baseline not in by_cell:
        return []
    keys = [(c["method"], c["budget"]) for c in table]
    label = f"{baseline[0]} N={baseline[1]}"
    found = []
    for measure, _, direction in MEASURES:
        scores = {key: {image: cell[measure] for image, cell in by_cell[key]} for key in keys}
        for row in compare_to_baseline(scores, keys, baseline, direction, seed):
            method, budget = row["method"]
            found.append({**row, "method": method, "budget": budget, "baseline": label, "metric": measure,
                          "direction": direction})  # fmt: skip
    return found


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


def summary_markdown(table: list[dict], note: str) -> str:
    head = (
        ["method", "N", "forwards", "s/expl."]
        + [f"{title} {ARROWS[d]}" for _, title, d in MEASURES]
        + ["images"]
    )
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for cell in table:
        values = [forwards_text(cell["forwards"]), _number(cell["seconds"], 3)]
        values += [
            _number(cell[m], 3)
            + interval_text(cell[f"{m}_ci_low"], cell[f"{m}_ci_high"], digits=3)
            + ("" if cell[f"{m}_n"] == cell["images"] else f" (n={cell[f'{m}_n']})")
            for m, _, _ in MEASURES
        ]
        lines.append(
            f"| {cell['method']} | {cell['budget']} | " + " | ".join(values) + f" | {cell['images']} |"
        )
    legend = (
        "Means over images [bootstrap 95% interval; none for one image] (each image: the mean over seeds; stability: "
        "the mean over pairs of seeds), over the images column unless n is shown; – undefined. "
        "forwards: perturbed images per explanation (N, or what an auto method chose); s/expl.: wall time of the "
        "call, which shared work (the neighbourhood of a larger N, the CAMs) makes cheaper for later calls."
    )
    return f"{note}\n\n" + "\n".join(lines) + f"\n\n{legend}\n"


def comparison_markdown(comparison: list[dict]) -> str:
    """The comparisons as (method, N) x quality measure, each cell the benchmarks' comparison text."""
    cells = {(r["method"], r["budget"], r["metric"]): r for r in comparison}
    usual = max((r["n_pairs"] for r in comparison), default=0)
    lines = [
        "| method | N | " + " | ".join(f"{title} {ARROWS[d]}" for _, title, d in MEASURES) + " |",
        "|---|---|" + "---:|" * len(MEASURES),
    ]
    for method, budget in dict.fromkeys((r["method"], r["budget"]) for r in comparison):
        texts = []
        for measure, _, _ in MEASURES:
            row = cells[(method, budget, measure)]
            text = comparison_text(row, usual)
            texts.append(f"**{text}**" if row["significant"] else text)
        lines.append(f"| {method} | {budget} | " + " | ".join(texts) + " |")
    return "\n".join(lines) + "\n"


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
    table = summarise(rows, methods, int(settings["top_k"]), int(settings["seed"]))
    # The baseline of the comparisons: plain lime at --match-samples, which every run has (forwards_to_match's).
    compared = (DEFAULT_BASELINE, str(settings["match_samples"]))
    comparison = compare(rows, table, int(settings["top_k"]), compared, int(settings["seed"]))
    images = len({row["image"] for row in rows})
    note = (
        f"MyStability: {images} of {identity['data']['images']} images; {len(methods)} methods, "
        f"{len(settings['seeds'])} seeds, top-k = {settings['top_k']}; reference: plain lime at N = "
        f"{settings['reference_samples']} (another seed)."
    )
    atomic_write_text(folder / "summary.csv", csv_text(SUMMARY_COLUMNS, table))
    atomic_write_text(folder / "comparison.csv", csv_text(STABILITY_COMPARISON_COLUMNS, comparison))
    text = summary_markdown(table, note)
    if comparison:
        label = comparison[0]["baseline"]
        text += (f"\nPaired comparison with {label} (per image: the mean over seeds):\n\n"
                 f"{comparison_markdown(comparison)}\n{comparison_legend(label)}\n")  # fmt: skip
    atomic_write_text(folder / "summary.md", text)
    match_rows, baseline = forwards_to_match(table, methods, int(settings["match_samples"]))
    atomic_write_text(folder / "forwards_to_match.csv", csv_text(MATCH_COLUMNS, match_rows))
    atomic_write_text(
        folder / "forwards_to_match.md", match_markdown(match_rows, baseline, int(settings["match_samples"]))
    )
    fig = curves_figure(table, methods)
    atomic_savefig(fig, folder / "curves.png", dpi=300)
    atomic_savefig(fig, folder / "curves.pdf")
    plt.close(fig)
    return folder / "summary.md"


def run_stability(request: StabilityRequest) -> RunStatus:
    """Run the stability study ``request`` asks for (its shard; here or on Ray workers; an interrupted run
    resumes), then write the summary, forwards_to_match and curves over every shard present
    (:func:`write_stability_summary`); returns how it ended (the tables are ``folder/summary.md`` and
    ``folder/forwards_to_match.md``). A bad request raises a one-line :class:`~cnnxai.errors.UserInputError`
    before any work."""
    folder = request.folder
    dataset, images = stability_images(request)
    # With Ray the workers start now (importing while the model loads here) and load it on their own devices.
    with worker_pool(request.ray, folder.device, ("cnnxai.stability.runner",)) as pool:
        device = resolve_device("cpu" if request.ray else folder.device)
        stability = stability_run(request, dataset, images, device, pool)
        if folder.overwrite:
            clear_run(folder.folder, folder.shard, RUN_FILES)
        status = stability.run()
    write_stability_summary(folder.folder)
    return RunStatus(stability.folder, stability.rows_folder, status)
