"""report.html: one self-contained page of a benchmark's output folder, for MyFaithfulness.py, MyComplexity.py and
Localisation.py alike.

Everything is read back from what the run wrote (summary.csv and summary.md, comparison.csv, scores.csv,
curves.png, the maps in ``gallery/*.npz``, manifest.json), so ``--report`` rebuilds the same page from a folder without any model
work, and the table shows exactly the numbers of summary.md. The page carries its figures as base64 PNG data
URIs and its one small script inline: it opens offline, mailed or archived as a single file.
"""

from __future__ import annotations

import base64
import csv
import html
import inspect
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.axes  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.ndimage import binary_erosion  # noqa: E402

from cnnxai.benchmark.gallery import DEFAULT_REPORT_IMAGES, GalleryImage, read_gallery  # noqa: E402
from cnnxai.benchmark.store import result_folders, run_manifests  # noqa: E402
from cnnxai.errors import UserInputError  # noqa: E402
from cnnxai.outputs import atomic_write_text  # noqa: E402
from cnnxai.reporting.summary import (  # noqa: E402
    ARROWS,
    COMPARISON_COLUMNS,
    SUMMARY_COLUMNS,
    cell_text,
    comparison_legend,
    comparison_text,
    statistics_legend,
    usual_count,
)

REPORT_NAME = "report.html"
THUMBNAIL = 128  # px: the longest side of a gallery picture, as inlined and as shown
HEADER_COLOUR = "#1f4e9a"  # the table's header, and the best method's box (summary.png's best bar)
BEST_COLOUR = "#ffd966"  # the background of each metric's best cell
OTHER_BOX = "#9bb7e0"
# Horizontal box plots: matplotlib 3.10 added ``orientation`` and deprecated ``vert`` (we support 3.7 on).
HORIZONTAL = (
    {"orientation": "horizontal"}
    if "orientation" in inspect.signature(matplotlib.axes.Axes.boxplot).parameters
    else {"vert": False}
)

# ---- what the report shows, read from an output folder -----------------------------------------------------


@dataclass(frozen=True)
class ReportData:
    """What one report shows: the run's ``tool`` and ``command``, the ``note`` above summary.md's table, the
    summary cells (summary.csv, typed), every defined score per (method, metric), the curves figure (PNG
    bytes or None), the gallery, and the paired comparisons with the baseline (comparison.csv, typed; empty
    for a single method)."""

    tool: str
    command: str
    note: str
    table: list[dict]
    scores: dict[tuple[str, str], list[float]]
    curves_png: bytes | None
    gallery: list[GalleryImage]
    comparison: Sequence[dict] = ()

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(cell["method"] for cell in self.table))

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(cell["metric"] for cell in self.table))

    def direction(self, metric: str) -> str:
        return next(cell["direction"] for cell in self.table if cell["metric"] == metric)


def check_report_folder(folder: Path, tool: str) -> dict:
    """The manifest of the ``tool`` run (e.g. 'MyFaithfulness.py') in ``folder``; a :class:`UserInputError`
    naming the problem when ``folder`` holds no finished run of that tool."""
    folder = Path(folder)
    fix = f"give the --output-dir of a finished {tool} run"
    manifests = run_manifests(folder) if folder.is_dir() else []
    if not manifests:
        raise UserInputError(f"--report: {folder} holds no manifest.json of a {tool} run; {fix}")
    manifest = json.loads(manifests[0].read_text())
    if manifest.get("tool") != tool:
        raise UserInputError(
            f"--report: {folder} holds a {manifest.get('tool')} run, not a {tool} one; use that tool's --report"
        )
    rows = _csv_rows(folder / "summary.csv")
    if not rows or tuple(rows[0]) != SUMMARY_COLUMNS:
        raise UserInputError(
            f"--report: {folder} has no summary.csv of a finished run; {fix} or --summarize it"
        )
    return manifest


def _csv_rows(path: Path) -> list[dict]:
    """The rows of a CSV file; a cut last line (a run still writing) is left out."""
    if not path.exists():
        return []
    text = path.read_text()
    return list(csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1])))


def read_summary(path: Path) -> list[dict]:
    """summary.csv's cells with their types back: mean, interval and std floats, n and n_nan ints, best a bool."""
    return [
        {**row, "mean": float(row["mean"]), "ci_low": float(row["ci_low"]), "ci_high": float(row["ci_high"]),
         "std": float(row["std"]), "n": int(row["n"]), "n_nan": int(row["n_nan"]), "best": row["best"] == "True"}
        for row in _csv_rows(path)
    ]  # fmt: skip


def read_comparison(path: Path) -> list[dict]:
    """comparison.csv's rows with their types back (floats, n_pairs an int, significant a bool); [] when the
    folder has none or one of another version."""
    rows = _csv_rows(path)
    if not rows or tuple(rows[0]) != COMPARISON_COLUMNS:
        return []
    floats = ("mean_diff", "ci_low", "ci_high", "wilcoxon_p", "p_holm")
    return [
        {**row, **{k: float(row[k]) for k in floats}, "n_pairs": int(row["n_pairs"]),
         "significant": row["significant"] == "True"}
        for row in rows
    ]  # fmt: skip


def read_scores(folders: Sequence[Path]) -> dict[tuple[str, str], list[float]]:
    """The defined values of every scores.csv in ``folders``, per (method, metric); NaNs are left out."""
    scores: dict[tuple[str, str], list[float]] = {}
    for folder in folders:
        for row in _csv_rows(folder / "scores.csv"):
            value = float(row["value"])
            if not math.isnan(value):
                scores.setdefault((row["method"], row["metric"]), []).append(value)
    return scores


def summary_note(path: Path) -> str:
    """The text summary.md has above its table (what was run, on how many images)."""
    if not path.exists():
        return ""
    lines = path.read_text().split("\n|", 1)[0].strip().splitlines()
    return "\n".join(line.lstrip("#").strip() for line in lines)


def load_report(folder: Path, tool: str, images: int = DEFAULT_REPORT_IMAGES) -> ReportData:
    """Everything a report of the ``tool`` run in ``folder`` shows, with at most ``images`` gallery images."""
    folder = Path(folder)
    manifest = check_report_folder(folder, tool)
    folders = result_folders(folder) or [folder]
    curves = folder / "curves.png"
    return ReportData(
        tool=tool, command=str(manifest.get("command", "")), note=summary_note(folder / "summary.md"),
        table=read_summary(folder / "summary.csv"), scores=read_scores(folders),
        curves_png=curves.read_bytes() if curves.exists() else None, gallery=read_gallery(folders, images),
        comparison=read_comparison(folder / "comparison.csv"),
    )  # fmt: skip


# ---- figures as PNG bytes ------------------------------------------------------------------------------------


def figure_png(fig, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG bytes (then closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def array_png(rgb: np.ndarray) -> bytes:
    """An RGB uint8 (H,W,3) picture as PNG bytes, shrunk (box filter) to at most ``THUMBNAIL`` px a side."""
    picture = Image.fromarray(np.ascontiguousarray(rgb))
    side = max(picture.size)
    if side > THUMBNAIL:
        scale = THUMBNAIL / side
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.BOX)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def map_rgb(values: np.ndarray) -> np.ndarray | None:
    """A map as a picture, scaled to its own largest magnitude: red (+) to blue (-) when it has negative
    values, dark to bright (magma) when it has none; None when it has no finite values to show."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        return None
    scale = float(np.abs(values).max()) or 1.0
    if values.min() < 0:
        colours = matplotlib.colormaps["RdBu_r"]((values / scale + 1) / 2)
    else:
        colours = matplotlib.colormaps["magma"](values / scale)
    return (colours[..., :3] * 255).round().astype(np.uint8)


def outlined(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``rgb`` with the edge of ``mask`` (the evidence) drawn in white; unchanged when there is no mask."""
    if mask is None:
        return rgb
    edge = mask & ~binary_erosion(mask)
    out = rgb.copy()
    out[edge] = 255
    return out


def distribution_figure(data: ReportData) -> bytes | None:
    """One box plot per metric (a subplot each): the spread of the defined values of every method, each value
    a dot, the best method of the summary in the header's colour. None when there is no score."""
    methods, metrics = data.methods, data.metrics
    if not data.scores:
        return None
    best = {(c["method"], c["metric"]) for c in data.table if c["best"]}
    columns = min(len(metrics), 3)
    rows = -(-len(metrics) // columns)
    height = 0.9 + 0.24 * len(methods)
    fig, axes = plt.subplots(rows, columns, figsize=(4.3 * columns, height * rows), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    jitter = np.random.default_rng(0)  # the dots' vertical spread only: the same picture on every call
    for axis, metric in zip(axes.ravel(), metrics, strict=False):
        series = [np.array(data.scores.get((m, metric), []), dtype=float) for m in methods]
        boxes = axis.boxplot([s if len(s) else [np.nan] for s in series], patch_artist=True, widths=0.6,
                             showfliers=False, medianprops={"color": "black"}, **HORIZONTAL)  # fmt: skip
        for box, method in zip(boxes["boxes"], methods, strict=True):
            box.set_facecolor(HEADER_COLOUR if (method, metric) in best else OTHER_BOX)
        for position, values in enumerate(series, start=1):
            axis.plot(values, position + jitter.uniform(-0.18, 0.18, len(values)), ".", color="#333333", ms=3)
            if not len(values):  # say so rather than show an empty row
                axis.text(0.01, position, "no defined value", transform=axis.get_yaxis_transform(),
                          va="center", fontsize=7, color="#777777")  # fmt: skip
        axis.xaxis.set_major_locator(MaxNLocator(5))
        axis.set_yticks(range(1, len(methods) + 1), methods, fontsize=7)
        axis.invert_yaxis()
        direction = data.direction(metric)
        axis.set_title(f"{metric} ({ARROWS[direction]} {direction} is better)", fontsize=9)
        axis.tick_params(axis="x", labelsize=7)
    for axis in axes.ravel()[len(metrics) :]:
        axis.set_axis_off()
    return figure_png(fig)


# ---- the page ----------------------------------------------------------------------------------------------


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img(png: bytes, alt: str, css: str = "") -> str:
    return f'<img src="{data_uri(png)}" alt="{html.escape(alt)}"' + (f' class="{css}"' if css else "") + ">"


def breakable(name: str) -> str:
    """``name`` escaped, with a line-break opportunity between its CamelCase words (narrow metric columns)."""
    return "<wbr>".join(html.escape(word) for word in re.split(r"(?<=[a-z])(?=[A-Z])", name))


def _td(text: str, value: float, css: str = "", bold: bool = False) -> str:
    """A table cell: ``text`` escaped (in bold if asked), its number in ``data-value`` for sorting ('' for NaN),
    ``css`` its class."""
    shown = f"<b>{html.escape(text)}</b>" if bold else html.escape(text)
    number = "" if math.isnan(value) else repr(value)
    attribute = f' class="{css}"' if css else ""
    return f'<td{attribute} data-value="{number}">{shown}</td>'


def _sortable(table_id: str, head: list[str], rows: dict[str, list[str]], legend: str) -> str:
    """A sortable table (see SCRIPT): the method column, then the header cells ``head``; a row per method of
    ``rows`` (method -> its cells); ``legend`` (plain text) below."""
    body = [
        f'<tr><th scope="row" data-value="{html.escape(m)}">{html.escape(m)}</th>' + "".join(cells) + "</tr>"
        for m, cells in rows.items()
    ]
    return (
        f'<div class="scroll"><table id="{table_id}" class="summary sortable"><thead><tr>'
        + '<th data-sort="text" title="click to sort">method</th>' + "".join(head)
        + "</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table></div>"
        + f'<p class="legend">{html.escape(legend)}</p>'
    )  # fmt: skip


def _metric_header(data: ReportData, metric: str, title: str = "", attributes: str = "") -> str:
    direction = data.direction(metric)
    return (f'<th data-sort="{direction}"{attributes} title="{title}{direction} is better; click to sort">'
            f"{breakable(metric)} {ARROWS[direction]}</th>")  # fmt: skip


def summary_table(data: ReportData) -> str:
    """The summary as a sortable table: a column per metric with its direction, each cell summary.md's
    'mean [interval] (n)', the significant best of each column in bold with class="best"; ``data-value``
    holds the mean."""
    cells = {(c["method"], c["metric"]): c for c in data.table}
    usual = usual_count(data.table)
    head = [_metric_header(data, m, attributes=f' data-metric="{html.escape(m)}"') for m in data.metrics]
    rows = {}
    for method in data.methods:
        rows[method] = []
        for metric in data.metrics:
            cell = cells.get((method, metric))
            rows[method].append(
                _td("–", math.nan) if cell is None else
                _td(cell_text(cell, usual), cell["mean"], "best" if cell["best"] else "", cell["best"])
            )  # fmt: skip
    legend = f"{statistics_legend(usual)} The best cell on yellow. Click a column header to sort by it (again to reverse)."
    return _sortable("summary", head, rows, legend)


def comparison_section(data: ReportData) -> str:
    """comparison.csv as a sortable table: a row per method but the baseline, a column per metric, each cell
    summary.md's comparison text (the significant in bold, class="better" or "worse"); ``data-value`` holds
    the mean difference."""
    found = {(r["method"], r["metric"]): r for r in data.comparison}
    usual = usual_count([{"n": r["n_pairs"]} for r in data.comparison])
    head = [_metric_header(data, m, "method − baseline; ") for m in data.metrics]
    rows = {}
    for method in dict.fromkeys(r["method"] for r in data.comparison):
        rows[method] = []
        for metric in data.metrics:
            row = found.get((method, metric))
            css = {"method": "better", "baseline": "worse"}.get(row["better"], "") if row else ""
            rows[method].append(
                _td("–", math.nan) if row is None else
                _td(comparison_text(row, usual), row["mean_diff"], css, row["significant"])
            )  # fmt: skip
    legend = f"{comparison_legend(data.comparison[0]['baseline'])} Significantly better: green; worse: red."
    return _sortable("comparison", head, rows, legend)


def gallery_section(data: ReportData) -> str:
    """Each gallery image beside every method's map (in the table's method order)."""
    if not data.gallery:
        return "<p>No attribution maps stored in gallery/ (run with --report-images above 0).</p>"
    legend = ("Each map is scaled to its own largest magnitude: red positive, blue negative (maps with "
              "negative values), or dark to bright (maps without)")  # fmt: skip
    if any(image.mask is not None for image in data.gallery):
        legend += "; white: the edge of the ground-truth evidence"
    blocks = [f'<p class="legend">{legend}.</p>']
    for image in data.gallery:
        tiles = [_tile(array_png(outlined(image.frame, image.mask)), image.title, "image")]
        known = [m for m in data.methods if m in image.maps]
        for method in known + [m for m in image.maps if m not in known]:
            rgb = map_rgb(image.maps[method])
            tiles.append(_tile(None if rgb is None else array_png(outlined(rgb, image.mask)), method))
        blocks.append(f'<div class="gallery-row">{"".join(tiles)}</div>')
    return "\n".join(blocks)


def _tile(png: bytes | None, caption: str, css: str = "") -> str:
    picture = img(png, caption) if png is not None else '<div class="undefined">undefined</div>'
    return f'<figure class="{css}">{picture}<figcaption>{html.escape(caption)}</figcaption></figure>'


STYLE = f"""
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }}
h1 {{ font-size: 22px; margin: 0 0 6px; }} h2 {{ font-size: 17px; margin: 28px 0 8px; }}
code {{ font-size: 12px; background: #f2f2f2; padding: 2px 4px; }}
.scroll {{ overflow-x: auto; }}
table.summary {{ border-collapse: collapse; font-size: 13px; }}
table.summary th, table.summary td {{ border: 1px solid #c8c8c8; padding: 4px 8px; }}
table.summary td {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
table.summary tbody th {{ text-align: left; font-weight: normal; }}
table.summary thead th {{ background: {HEADER_COLOUR}; color: #fff; cursor: pointer; user-select: none; }}
table.summary thead th[aria-sort=ascending]::after {{ content: " ▲"; }}
table.summary thead th[aria-sort=descending]::after {{ content: " ▼"; }}
td.best {{ background: {BEST_COLOUR}; }}
td.better {{ background: #d9ead3; }} td.worse {{ background: #f4cccc; }}
.legend {{ font-size: 12px; color: #555; }}
img.plot {{ max-width: 100%; }}
.gallery-row {{ display: flex; flex-wrap: wrap; gap: 6px; margin-bottom: 14px; }}
.gallery-row figure {{ margin: 0; width: {THUMBNAIL}px; }}
.gallery-row img, .undefined {{ width: {THUMBNAIL}px; height: {THUMBNAIL}px; image-rendering: pixelated; }}
.gallery-row figure.image figcaption {{ font-weight: bold; }}
.undefined {{ background: #eee; color: #888; display: flex; align-items: center; justify-content: center; }}
figcaption {{ font-size: 11px; overflow-wrap: anywhere; }}
"""

# Click a header: rows sorted by that column, best first for a metric (by its direction), A-Z for the method;
# click again to reverse. Cells without a value always go last.
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(headers, function (th, column) {
    th.addEventListener("click", function () {
      var first = th.dataset.sort === "higher" ? "descending" : "ascending";
      var current = th.getAttribute("aria-sort");
      var order = current ? (current === "ascending" ? "descending" : "ascending") : first;
      Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", order);
      var sign = order === "ascending" ? 1 : -1;
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        if (th.dataset.sort === "text") { return sign * x.localeCompare(y); }
        return sign * (parseFloat(x) - parseFloat(y));
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def render_report(data: ReportData) -> str:
    """The whole page: header, summary table, deletion/insertion curves (when the run has them), the
    distributions, the gallery, and the sorting script."""
    note = "".join(f"<p>{html.escape(line)}</p>" for line in data.note.splitlines() if line)
    sections = [
        f"<h1>{html.escape(data.tool)} report</h1>{note}<p><code>{html.escape(data.command)}</code></p>",
        "<h2>Summary</h2>" + summary_table(data),
    ]
    if data.comparison:
        sections.append(f"<h2>Paired comparison with {html.escape(data.comparison[0]['baseline'])}</h2>"
                        + comparison_section(data))  # fmt: skip
    if data.curves_png is not None:
        sections.append("<h2>Deletion and insertion curves</h2>"
                        + img(data.curves_png, "mean deletion and insertion curves", "plot"))  # fmt: skip
    distributions = distribution_figure(data)
    if distributions is not None:
        sections.append("<h2>Distributions per method</h2><p class=\"legend\">Every defined value (a dot per "
                        "image), its box (quartiles, median) and whiskers; the best method of each metric, "
                        "when its lead is significant, in dark blue.</p>" + img(distributions, "distributions of each metric per method", "plot"))  # fmt: skip
    sections.append("<h2>Attribution maps</h2>" + gallery_section(data))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(data.tool)} report</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(sections) + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )  # fmt: skip


def write_report(folder: Path, tool: str, images: int = DEFAULT_REPORT_IMAGES) -> Path:
    """Write ``folder/report.html`` (atomically) from the ``tool`` run's files in ``folder``, with at most
    ``images`` gallery images; returns its path. Raises :class:`UserInputError` when ``folder`` holds no
    finished run of ``tool`` (then nothing is written)."""
    page = render_report(load_report(folder, tool, images))
    path = Path(folder) / REPORT_NAME
    atomic_write_text(path, page)
    return path
