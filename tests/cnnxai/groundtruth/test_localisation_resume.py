"""Localisation.py on the one run template: an interrupted run resumes to the rows of an uninterrupted one, and
two shards summarised together give what one whole run gives."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnxai.groundtruth.benchmark import LocaliseWork
from cnnxai.groundtruth.cli import main
from cnnxai.metrics import LOCALISATION_METRICS

METHODS = ("gradcam", "lime", "control_random")
UNIT_ROWS = len(METHODS) * len(LOCALISATION_METRICS)  # one test image with every method


def arguments(cache: Path, out: Path) -> list[str]:
    """Four test images of a model trained on 100 images for one epoch (seconds); the rows of each image are
    one unit."""
    return ["--num-images", "4", "--methods", ",".join(METHODS), "--num-samples", "60", "--train-images", "100",
            "--epochs", "1", "--examples", "2", "--report-images", "3", "--cache-dir", str(cache), "--output-dir", str(out),
            "--quiet", "--dpi", "30"]  # fmt: skip


def rows(path: Path, timing: bool = False) -> list[dict]:
    with open(path) as handle:
        return [{k: v for k, v in r.items() if timing or k != "seconds"} for r in csv.DictReader(handle)]


def gallery(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every gallery file under ``folder`` (its shards' too), by name: its arrays."""
    found = {}
    for path in sorted(folder.rglob("gallery/*.npz")):
        with np.load(path) as data:
            found[path.name] = {k: data[k] for k in data.files}
    return found


def same_gallery(one: dict, other: dict) -> bool:
    return one.keys() == other.keys() and all(
        one[n].keys() == other[n].keys()
        and all(np.array_equal(one[n][k], other[n][k], equal_nan=one[n][k].dtype.kind == "f") for k in one[n])
        for n in one
    )


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> tuple[Path, Path]:
    """One uninterrupted run: (its folder, the model cache)."""
    cache, out = tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("runs") / "whole"
    assert main(arguments(cache, out)) == 0
    return out, cache


def test_an_interrupted_run_resumes_to_the_rows_of_an_uninterrupted_one(whole, tmp_path, monkeypatch, capsys):
    expected, cache = whole
    out = tmp_path / "resumed"
    case = LocaliseWork.case

    def interrupted(self, i):
        if i == 2:  # stopped (Ctrl-C) while explaining the third image
            raise KeyboardInterrupt
        return case(self, i)

    monkeypatch.setattr(LocaliseWork, "case", interrupted)
    assert main(arguments(cache, out)) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    kept = rows(out / "scores.csv", timing=True)
    assert len(kept) == 2 * UNIT_ROWS and {r["image"] for r in kept} == {"0", "1"}
    with open(out / "scores.csv", "a") as handle:  # and a kill in the middle of a write: a cut line
        handle.write("2,1,1,gradcam,PointingGame,0.5")
    monkeypatch.setattr(LocaliseWork, "case", case)
    assert main(arguments(cache, out)) == 0
    resumed = rows(out / "scores.csv", timing=True)
    assert resumed[: len(kept)] == kept  # the finished units were kept, not computed again
    assert rows(out / "scores.csv") == rows(expected / "scores.csv")  # nothing lost, nothing twice
    for name in ("summary.csv", "comparison.csv", "summary.md"):
        assert (out / name).read_text() == (expected / name).read_text(), name
    assert same_gallery(gallery(out), gallery(expected))
    assert np.array_equal(pixels(out / "examples.png"), pixels(expected / "examples.png"))
    status = json.loads((out / "manifest.json").read_text())
    assert status["status"] == "complete" and status["units"] == 4 and status["units_resumed"] == 2
    # Run again: every unit is finished, nothing is computed; other settings are refused.
    assert main(arguments(cache, out)) == 0
    assert rows(out / "scores.csv", timing=True) == resumed
    assert main([*arguments(cache, out), "--seed", "1"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_two_shards_summarised_give_the_whole_run(whole, tmp_path, capsys):
    expected, cache = whole
    out = tmp_path / "sharded"
    for shard in ("2/2", "1/2"):
        assert main([*arguments(cache, out), "--shard", shard]) == 0
    assert not (out / "scores.csv").exists()
    parts = [rows(out / "shards" / name / "scores.csv") for name in ("1-of-2", "2-of-2")]
    assert {r["image"] for r in parts[0]} == {"0", "2"} and {r["image"] for r in parts[1]} == {"1", "3"}
    (out / "summary.csv").unlink()
    capsys.readouterr()
    assert main(["--output-dir", str(out), "--summarize", "--dpi", "30"]) == 0
    assert "| gradcam |" in capsys.readouterr().out
    order = {m: i for i, m in enumerate(METHODS)}

    def ordered(found: list[dict]) -> list[dict]:
        return sorted(found, key=lambda r: (int(r["image"]), order[r["method"]]))

    assert ordered(parts[0] + parts[1]) == ordered(rows(expected / "scores.csv"))
    for name in ("summary.csv", "comparison.csv"):
        assert (out / name).read_text() == (expected / name).read_text(), name
    table = (expected / "summary.md").read_text().split("\n|", 1)[1]
    assert (out / "summary.md").read_text().split("\n|", 1)[1] == table
    assert "shards present: 1-of-2, 2-of-2" in (out / "summary.md").read_text()
    assert same_gallery(gallery(out), gallery(expected))
    assert np.array_equal(pixels(out / "examples.png"), pixels(expected / "examples.png"))
    assert (out / "report.html").exists()


def test_run_localisation_is_the_command_as_one_library_call(whole, tmp_path, capsys):
    """A request made in Python gives the rows Localisation.py gave with the same flags (the model read from the
    cache that run filled, said through ``on_model``; the command line's default backend, auto, set around the
    call as the command line does); the library prints nothing."""
    from cnnxai.groundtruth.report import LocalisationRequest, LocalisationSettings
    from cnnxai.reporting.localisation import run_localisation
    from cnnxai.synthetic.shapes_model import CAM_LAYER
    from lime_ext.backends import default_backend

    expected, cache = whole
    settings = LocalisationSettings(
        methods=METHODS, explainer_options={"gradcam": {"layers": [CAM_LAYER]},
                                            "lime": {"num_samples": 60, "segmenter": "slic"}},
        num_images=4, train_images=100, epochs=1, examples=2, cache_dir=str(cache),
    )  # fmt: skip
    models = []
    request = LocalisationRequest(settings, str(tmp_path / "library"), report_images=3, dpi=30, quiet=True)
    with default_backend("auto"):
        status = run_localisation(request, models.append)
    assert capsys.readouterr().out == ""
    assert [info["loaded_from_cache"] for info in models] == [True]
    assert status.status["images"] == 4 and "summary.csv" in status.files and "examples.png" in status.files
    assert status.report.settings.methods == METHODS
    assert rows(tmp_path / "library" / "scores.csv") == rows(expected / "scores.csv")
