"""report.html of MyFaithfulness.py and Localisation.py: written at the end of a run and by --report alone, its
content read back (the table's numbers are summary.md's, every picture inlined, nothing fetched), and the page as
Chromium renders it (skipped where no chromium binary is installed)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnxai.benchmark.cli as benchmark_cli
import cnnxai.benchmark.request as benchmark_request
from cnnxai.groundtruth.cli import main as localisation_main
from cnnxai.reporting.html import BEST_COLOUR, HEADER_COLOUR, write_report
from cnnxai.reporting.summary import write_summary
from tests.cnnxai.benchmark.test_benchmark import CHEAP
from tests.helpers import TINY_IMAGENET_MODEL

METHODS = ["saliency", "control_random", "lime"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (apt-get install chromium): the report is not rendered"
)


class Page(HTMLParser):
    """What a test needs of a page: every tag's attributes, and each table's rows as (method, [(text,
    attributes) per metric cell]) and header cells' attributes, by the table's id: ``rows`` and ``headers`` are
    the summary table's, ``comparison`` the comparison table's rows."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.tables: dict[str, list[tuple[str, list[tuple[str, dict]]]]] = {}
        self.table_headers: dict[str, list[dict]] = {}
        self._cell: tuple[str, dict] | None = None
        self._in_body = False
        self._table = ""
        self.feed(text)
        self.rows = self.tables.get("summary", [])
        self.headers = self.table_headers.get("summary", [])
        self.comparison = self.tables.get("comparison", [])

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "table":
            self._table = attrs.get("id", "")
            self.tables[self._table], self.table_headers[self._table] = [], []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.tables[self._table].append(("", []))
        elif tag in ("td", "th"):
            self._cell = ("", attrs)
            if not self._in_body:
                self.table_headers[self._table].append(attrs)

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag in ("td", "th") and self._cell is not None and self._in_body:
            text, attrs = self._cell
            rows = self.tables[self._table]
            if tag == "th":
                rows[-1] = (text, rows[-1][1])
            else:
                rows[-1][1].append((text, attrs))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell = (self._cell[0] + data, self._cell[1])

    def images(self) -> list[str]:
        return [attrs.get("src", "") for tag, attrs in self.tags if tag == "img"]


def markdown_cells(path: Path, table: int = 0) -> dict[str, list[str]]:
    """summary.md's table number ``table`` (0: the summary, 1: the comparison): method -> its cells' text, bold
    marks removed."""
    cells: list[dict[str, list[str]]] = []
    for line in path.read_text().splitlines():
        if line.startswith("| method"):
            cells.append({})
        elif line.startswith("| "):
            parts = [part.strip() for part in line.strip("|").split("|")]
            cells[-1][parts[0]] = [part.replace("**", "") for part in parts[1:]]
    return cells[table]


def folder_state(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` but report.html, by its content's hash."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "report.html"
    }


@pytest.fixture(scope="module")
def faithfulness_run(tmp_path_factory) -> Path:
    """A MyFaithfulness.py run on the three sample photos with a tiny CNN, 3 methods, 8 metrics, a gallery of 2."""
    out = tmp_path_factory.mktemp("report") / "faith"
    code = benchmark_cli.main("faithfulness", ["--output-dir", str(out), "--methods", ",".join(METHODS),
                                               "--report-images", "2", *TINY_IMAGENET_MODEL, *CHEAP])  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def decided_run(tmp_path_factory) -> Path:
    """A folder summarised from synthetic scores of 10 images: on Deletion (lower is better) method a is below
    lime and b on every image, by 0.1 or more; on Insertion all three are the same noise."""
    out = tmp_path_factory.mktemp("decided")
    rng = np.random.default_rng(3)
    rows = []
    for i in range(10):
        base = rng.uniform(0.3, 0.6)
        deletion = {"a": base - 0.1 - rng.uniform(0, 0.05), "b": base + rng.normal(0, 0.02), "lime": base}
        for method in ("a", "b", "lime"):
            rows.append(
                {"image": f"im{i}", "method": method, "metric": "Deletion", "value": repr(deletion[method])}
            )
            rows.append(
                {"image": f"im{i}", "method": method, "metric": "Insertion", "value": repr(rng.uniform())}
            )
    (out / "scores.csv").write_text(
        "image,method,metric,value\n"
        + "".join(f"{r['image']},{r['method']},{r['metric']},{r['value']}\n" for r in rows)
    )
    (out / "manifest.json").write_text('{"tool": "MyFaithfulness.py", "command": "synthetic"}')
    write_summary(out, rows, ["a", "b", "lime"], ["Deletion", "Insertion"], "synthetic", seed=0)
    write_report(out, "MyFaithfulness.py", 0)
    return out


def test_a_significant_lead_is_marked_and_the_comparison_shown(decided_run):
    page = Page((decided_run / "report.html").read_text())
    summary = {(r["method"], r["metric"]): r for r in csv.DictReader(open(decided_run / "summary.csv"))}
    assert {key for key, r in summary.items() if r["best"] == "True"} == {("a", "Deletion")}
    cells = dict(page.rows)
    assert [c[1].get("class") for c in cells["a"]] == ["best", None]
    assert all(c[1].get("class") is None for m in ("b", "lime") for c in cells[m])
    comparison = {(r["method"], r["metric"]): r for r in csv.DictReader(open(decided_run / "comparison.csv"))}
    assert (
        comparison[("a", "Deletion")]["better"] == "method"
        and comparison[("a", "Deletion")]["significant"] == "True"
    )
    shown = dict(page.comparison)
    for (method, metric), row in comparison.items():
        cell = shown[method][["Deletion", "Insertion"].index(metric)]
        assert cell[1].get("class") == {"method": "better", "baseline": "worse", "": None}[row["better"]]
    assert shown["a"][0][0].endswith("better")
    assert [c for c, _ in shown["a"]] == markdown_cells(decided_run / "summary.md", 1)["a"]


def test_a_run_writes_a_self_contained_report_with_the_summary_s_numbers(faithfulness_run):
    out = faithfulness_run
    text = (out / "report.html").read_text()
    page = Page(text)
    # The table: summary.md's cells, method by method, each metric's direction in its header, best marked.
    expected = markdown_cells(out / "summary.md")
    assert [method for method, _ in page.rows] == METHODS
    for method, cells in page.rows:
        assert [cell_text for cell_text, _ in cells] == expected[method]
    summary = list(csv.DictReader(open(out / "summary.csv")))
    metrics = list(dict.fromkeys(row["metric"] for row in summary))
    assert [h.get("data-metric") for h in page.headers[1:]] == metrics
    assert page.headers[metrics.index("Deletion") + 1]["data-sort"] == "lower"
    assert "Deletion ↓" in text and "Insertion ↑" in text
    for row in summary:
        cell = dict(page.rows)[row["method"]][metrics.index(row["metric"])]
        assert (cell[1].get("class") == "best") == (row["best"] == "True"), row
    # Three images: no lead can be significant (the smallest exact Wilcoxon p is 0.25), so none is marked
    # (test_a_significant_lead_is_marked_and_the_comparison_shown has a run where one is).
    assert sum(row["best"] == "True" for row in summary) == text.count('class="best"') == 0
    # The comparison with lime: summary.md's comparison cells, a row per other method.
    compared = markdown_cells(out / "summary.md", 1)
    assert [method for method, _ in page.comparison] == ["saliency", "control_random"]
    for method, cells in page.comparison:
        assert [cell_text for cell_text, _ in cells] == compared[method]
    # Every picture is an inlined PNG that decodes; nothing is fetched from elsewhere.
    sources = page.images()
    assert len(sources) == 1 + 1 + 2 * (1 + len(METHODS))  # curves, distributions, 2 images x (image + maps)
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).verify()
    assert base64.b64decode(sources[0].split(",", 1)[1]) == (out / "curves.png").read_bytes()
    assert not re.search(r"https?://|<link|@import|url\(", text)
    assert all("src" not in attrs for tag, attrs in page.tags if tag == "script")
    # The gallery: the run kept the maps of its first 2 images, frame and every method's map as scored.
    stored = sorted((out / "gallery").glob("*.npz"))
    assert [p.name for p in stored] == ["sample_chelsea.npz", "sample_coffee.npz"]
    with np.load(stored[0]) as data:
        assert data["frame"].shape == (224, 224, 3) and data["frame"].dtype == np.uint8
        assert sorted(data["methods"]) == sorted(METHODS) and data["maps"].shape == (3, 224, 224)


def test_report_alone_rewrites_only_the_report_without_a_model(faithfulness_run, monkeypatch, capsys):
    out = faithfulness_run
    before = folder_state(out)
    (out / "report.html").unlink()

    def no_model(*args, **kwargs):
        raise AssertionError("--report loaded a model")

    monkeypatch.setattr(benchmark_request, "load_classifier", no_model)
    argv = ["--output-dir", str(out), "--report", "--report-images", "1"]
    assert benchmark_cli.main("faithfulness", argv) == 0
    assert "report.html" in capsys.readouterr().out
    assert folder_state(out) == before
    page = Page((out / "report.html").read_text())
    assert len(page.images()) == 1 + 1 + 1 + len(METHODS)  # one gallery image now


@pytest.mark.parametrize("case", ["missing", "empty", "other tool", "localisation on a benchmark"])
def test_report_of_no_such_output_is_one_line_exit_2(case, faithfulness_run, tmp_path, capsys):
    folder = {"missing": tmp_path / "nope", "empty": tmp_path, "other tool": faithfulness_run,
              "localisation on a benchmark": faithfulness_run}[case]  # fmt: skip
    before = folder_state(folder) if folder.exists() else None
    argv = ["--output-dir", str(folder), "--report"]
    if case == "localisation on a benchmark":
        code = localisation_main(argv)
    else:
        code = benchmark_cli.main("complexity" if case == "other tool" else "faithfulness", argv)
    error = capsys.readouterr().err
    assert code == 2 and error.startswith("error: --report") and error.count("\n") == 1, error
    assert (folder_state(folder) if folder.exists() else None) == before
    assert case != "missing" or not folder.exists()


def test_localisation_reports_its_examples_with_their_evidence(tmp_path, capsys):
    out = tmp_path / "loc"
    argv = ["--num-images", "3", "--methods", "gradcam,control_random", "--train-images", "100", "--epochs", "1",
            "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(out), "--quiet", "--dpi", "30"]  # fmt: skip
    assert localisation_main([*argv, "--report-images", "2"]) == 0
    text = (out / "report.html").read_text()
    page = Page(text)
    assert [method for method, _ in page.rows] == ["gradcam", "control_random"]
    assert len(page.images()) == 1 + 2 * 3  # distributions, 2 examples x (image + 2 maps); no curves
    assert "edge of the ground-truth evidence" in text and "Deletion" not in text
    with np.load(out / "gallery" / "case-0.npz") as data:
        assert data["mask"].shape == (64, 64) and data["mask"].any() and data["maps"].shape == (2, 64, 64)
    capsys.readouterr()
    assert localisation_main(["--output-dir", str(out), "--report", "--report-images", "1"]) == 0
    assert len(Page((out / "report.html").read_text()).images()) == 1 + 3


def chromium(*arguments: str) -> str:
    """Run headless Chromium (no sandbox: tests may run as root); its stdout."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


@needs_chromium
def test_the_report_renders_in_chromium(faithfulness_run, decided_run, tmp_path):
    out = faithfulness_run
    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,2000", (out / "report.html").resolve().as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (2000, 1280, 3)
    assert np.mean(np.any(pixels < 245, axis=-1)) > 0.08  # not a blank page
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert colours > 5000  # the photos and plots are drawn, not only text
    # The table's header: a band of rows at the top, at least half the page wide, in the header's colour;
    # below it, the best cells' colour.
    header = np.all(pixels == rgb(HEADER_COLOUR), axis=-1)
    band = np.flatnonzero(header.mean(axis=1) > 0.5)
    assert len(band) >= 15 and band.max() < 600, band
    # A run with a significant best (decided_run): its cell in the best cells' colour, below the header.
    shot = tmp_path / "decided.png"
    chromium(
        f"--screenshot={shot}", "--window-size=1280,1200", (decided_run / "report.html").resolve().as_uri()
    )
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    band = np.flatnonzero(np.all(pixels == rgb(HEADER_COLOUR), axis=-1).mean(axis=1) > 0.02)
    best = np.all(pixels == rgb(BEST_COLOUR), axis=-1)
    assert best[band.min() : band.min() + 200].sum() > 500


@needs_chromium
def test_the_table_sorts_by_a_clicked_header_in_chromium(faithfulness_run, tmp_path):
    """The page's own script, run by Chromium: a click on 'Deletion' orders the rows best (lowest) first, a
    second click reverses them; every image decodes."""
    probe = """<script>window.addEventListener("load", function () {
      var images = Array.prototype.slice.call(document.images);
      var decoded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
      function order() { return Array.prototype.map.call(document.querySelectorAll("#summary tbody tr"),
                                                         function (r) { return r.cells[0].textContent; }).join(","); }
      var header = document.querySelector('th[data-metric="Deletion"]');
      header.click(); var first = order(); header.click();
      document.body.setAttribute("data-probe", decoded + "/" + images.length + ";" + first + ";" + order());
    });</script></body>"""
    page = tmp_path / "probe.html"
    page.write_text((faithfulness_run / "report.html").read_text().replace("</body>", probe))
    dom = chromium("--dump-dom", page.as_uri())
    decoded, first, second = re.search(r'data-probe="([^"]*)"', dom).group(1).split(";")
    count = len(Page((faithfulness_run / "report.html").read_text()).images())
    assert decoded == f"{count}/{count}"
    means = {r["method"]: float(r["mean"]) for r in csv.DictReader(open(faithfulness_run / "summary.csv"))
             if r["metric"] == "Deletion"}  # fmt: skip
    assert first.split(",") == sorted(METHODS, key=means.get)
    assert second.split(",") == sorted(METHODS, key=means.get, reverse=True)
