"""MyFaithfulness.py / MyComplexity.py end to end on a tiny model: outputs, resuming, shards, NaNs, bad input."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnxai.zoo as zoo
from cnnxai.benchmark.cli import main
from cnnxai.benchmark.data import discover, imagenet_wnids, make_groups, select, shard_groups
from cnnxai.benchmark.store import SCORE_COLUMNS, run_lock
from cnnxai.explainers import REGISTRY, Attribution
from cnnxai.explainers.registry import ExplainerSpec
from cnnxai.zoo import imagenet_class_names
from tests.helpers import make_tiny_cnn, small_photo

TIMING = ("seconds", "explain_seconds")
CHEAP = [
    "--layers", "4", "--num-samples", "24", "--segmenter", "slic", "--device", "cpu", "--quiet",
    "--set", "FaithfulnessCorrelation.nr_runs=8", "--set", "FaithfulnessEstimate.features_in_step=12544",
    "--set", "MonotonicityCorrelation.features_in_step=12544", "--set", "MonotonicityCorrelation.nr_samples=2",
    "--set", "IROF.n_segments=6", "--set", "Deletion.step=12544", "--set", "Insertion.step=12544",
]  # fmt: skip
COMPLEXITY_CHEAP = [
    "--layers",
    "4",
    "--num-samples",
    "24",
    "--segmenter",
    "slic",
    "--device",
    "cpu",
    "--quiet",
]
METHODS = ["--methods", "saliency,control_random,lime"]


@pytest.fixture(autouse=True)
def tiny_model(monkeypatch):
    """The zoo hands out a tiny CNN with 1000 outputs (ImageNet's class count) instead of a real model."""

    def load(name, weights=None, device="cpu", *_):
        return make_tiny_cnn(num_classes=1000).to(device), {
            "model": "tiny",
            "weights_file": None,
            "weights_sha256": "0",
        }

    monkeypatch.setattr(zoo, "load_model", load)


@pytest.fixture
def imagenet_folder(tmp_path) -> Path:
    """Two classes (tench, goldfish) of three images each, ImageNet-validation style."""
    root = tmp_path / "val"
    for c, wnid in enumerate(imagenet_wnids()[:2]):
        (root / wnid).mkdir(parents=True)
        for i in range(3):
            photo = np.roll(small_photo(72), 9 * i + 20 * c, axis=1)
            Image.fromarray(photo).save(root / wnid / f"img{i}.png")
    return root


def run(tool, args, capsys):
    code = main(tool, args)
    out = capsys.readouterr()
    return code, out.out, out.err


def rows(path: Path) -> list[dict]:
    """scores.csv rows without the timing columns, sorted (the order of units may differ between runs)."""
    found = []
    for folder in [path, *sorted((path / "shards").glob("*"))]:
        if (folder / "scores.csv").exists():
            found += [
                {k: v for k, v in r.items() if k not in TIMING}
                for r in csv.DictReader(open(folder / "scores.csv"))
            ]
    return sorted(found, key=lambda r: (r["image"], r["method"], r["metric"]))


def test_faithfulness_on_an_imagenet_folder_writes_every_output(tmp_path, imagenet_folder, capsys):
    out = tmp_path / "faith"
    args = [
        "--data-dir",
        str(imagenet_folder),
        "--output-dir",
        str(out),
        "--sufficiency-batch",
        "3",
        *METHODS,
        *CHEAP,
    ]
    code, stdout, stderr = run("faithfulness", args, capsys)
    assert code == 0, stderr
    assert {p.name for p in out.iterdir()} >= {"scores.csv", "curves.csv", "curves_mean.csv", "curves.png",
                                               "summary.csv", "summary.md", "summary.png", "comparison.csv",
                                               "comparison.png", "manifest.json"}  # fmt: skip
    scores = list(csv.DictReader(open(out / "scores.csv")))
    assert tuple(scores[0]) == SCORE_COLUMNS
    assert {r["samples"] for r in scores if r["method"] == "lime"} == {"24"}  # the LIME family says its N
    assert {r["samples"] for r in scores if r["method"] != "lime"} == {""}
    assert len(scores) == 6 * 3 * 8  # images x methods x metrics, no more, no less
    assert {r["image"].split("/")[0] for r in scores} == set(imagenet_wnids()[:2])
    for r in scores:  # the folder's WordNet id gives the true class
        assert int(r["true_class"]) == imagenet_wnids().index(r["image"].split("/")[0])
        assert r["reason"] or not math.isnan(float(r["value"]))  # a NaN always says why
    assert len({(r["group"], r["image"]) for r in scores}) == 6 and {r["group"] for r in scores} == {"0", "1"}
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert len(summary) == 3 * 8
    directions = {r["metric"]: r["direction"] for r in summary}
    assert directions["Deletion"] == "lower" and directions["Insertion"] == "higher"
    # No best marked: with 6 images the smallest exact two-sided Wilcoxon p is 2/64, and Holm doubles it for the
    # leader's two comparisons (0.0625 > 0.05), so no lead can be significant.
    assert not any(r["best"] == "True" for r in summary)
    for r in summary:
        values = [
            float(s["value"]) for s in scores if s["method"] == r["method"] and s["metric"] == r["metric"]
        ]
        finite = [v for v in values if not math.isnan(v)]
        assert int(r["n"]) == len(finite) and int(r["n_nan"]) == len(values) - len(finite)
        if finite:
            assert float(r["mean"]) == pytest.approx(np.mean(finite))
        if len(finite) > 1:
            assert float(r["ci_low"]) - 1e-9 <= float(r["mean"]) <= float(r["ci_high"]) + 1e-9
    comparison = list(csv.DictReader(open(out / "comparison.csv")))
    assert {(r["method"], r["metric"]) for r in comparison} == {
        (m, k) for m in ("saliency", "control_random") for k in directions
    }
    value = {(s["method"], s["metric"], s["image"]): float(s["value"]) for s in scores}
    for r in comparison:  # paired on the images where both are defined, method - lime
        assert r["baseline"] == "lime" and r["direction"] == directions[r["metric"]]
        keys = sorted({s["image"] for s in scores})
        pairs = [
            (value[(r["method"], r["metric"], k)], value[("lime", r["metric"], k)])
            for k in keys
            if not math.isnan(value[(r["method"], r["metric"], k)])
            and not math.isnan(value[("lime", r["metric"], k)])
        ]
        assert int(r["n_pairs"]) == len(pairs)
        if pairs:
            assert float(r["mean_diff"]) == pytest.approx(np.mean([a - b for a, b in pairs]))
    text = (out / "summary.md").read_text()
    assert "Paired comparison with lime" in text and "| lime |" in stdout and "| saliency |" in stdout
    curves = list(csv.DictReader(open(out / "curves.csv")))
    assert len(curves) == 6 * 3 * 2 and all(len(c["values"].split()) == 5 for c in curves)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["identity"]["settings"]["group_size"] == 3
    assert manifest["metrics"]["IROF"]["params"]["n_segments"] == 6 and "torch" in manifest["versions"]


def test_the_seeds_option_names_draw_classes_and_images(tmp_path, imagenet_folder, capsys):
    out = tmp_path / "cx"
    args = [
        "--data-dir",
        str(imagenet_folder),
        "--NumFile",
        "1",
        "--FileSample",
        "2",
        "--output-dir",
        str(out),
    ]
    code, _, stderr = run("complexity", [*args, "--methods", "control_random", *COMPLEXITY_CHEAP], capsys)
    assert code == 0, stderr
    images = {r["image"] for r in csv.DictReader(open(out / "scores.csv"))}
    assert len(images) == 2 and len({image.split("/")[0] for image in images}) == 1


def test_complexity_on_the_sample_photos(tmp_path, capsys):
    out = tmp_path / "cx"
    code, stdout, stderr = run(
        "complexity", ["--output-dir", str(out), "--methods", "saliency,gradcam", *COMPLEXITY_CHEAP], capsys
    )
    assert code == 0, stderr
    scores = list(csv.DictReader(open(out / "scores.csv")))
    assert len(scores) == 3 * 2 * 3 and {r["image"] for r in scores} == {
        "sample:chelsea",
        "sample:coffee",
        "sample:rocket",
    }
    assert all(r["true_class"] == "" for r in scores)
    assert not (out / "curves.csv").exists()


def cut_points(text: str) -> list[int]:
    """Byte offsets a kill could leave a file at: inside the header, mid-line, at a unit's end, at the end."""
    lines = np.cumsum([len(line) for line in text.splitlines(keepends=True)])
    return sorted(
        {5, int(lines[0]), int(lines[3]) + 7, int(lines[len(lines) // 2]), int(lines[-2]), len(text) - 3}
    )


def test_a_run_killed_at_any_point_resumes_to_the_same_rows(tmp_path, imagenet_folder, capsys):
    full = tmp_path / "full"
    args = ["--data-dir", str(imagenet_folder), "--sufficiency-batch", "2", *METHODS, *CHEAP]
    assert run("faithfulness", [*args, "--output-dir", str(full)], capsys)[0] == 0
    expected = rows(full)
    scores_text, curves_text = (full / "scores.csv").read_text(), (full / "curves.csv").read_text()
    cases = [(cut, len(curves_text)) for cut in cut_points(scores_text)]  # scores cut, curves whole
    cases += [(scores_text.rfind("\n", 0, len(scores_text) // 2) + 1, len(curves_text) // 2 + 11)]  # both cut
    for i, (scores_cut, curves_cut) in enumerate(cases):
        resumed = tmp_path / f"resumed{i}"
        resumed.mkdir()
        (resumed / "scores.csv").write_text(scores_text[:scores_cut])
        (resumed / "curves.csv").write_text(curves_text[:curves_cut])
        shutil.copy(full / "manifest.json", resumed / "manifest.json")
        (resumed / ".lock").write_text(f"{socket.gethostname()} 999999999\n")  # left by the killed run
        code, _, stderr = run("faithfulness", [*args, "--output-dir", str(resumed)], capsys)
        assert code == 0, stderr
        assert rows(resumed) == expected, (scores_cut, curves_cut)
        curves = sorted(
            csv.DictReader(open(resumed / "curves.csv")), key=lambda r: (r["image"], r["method"], r["curve"])
        )
        assert curves == sorted(
            csv.DictReader(open(full / "curves.csv")), key=lambda r: (r["image"], r["method"], r["curve"])
        )
        assert (resumed / "summary.csv").read_text() == (full / "summary.csv").read_text()
        assert not (resumed / ".lock").exists()


def test_shards_together_equal_the_full_run(tmp_path, imagenet_folder, capsys):
    args = ["--data-dir", str(imagenet_folder), "--sufficiency-batch", "2", *METHODS, *CHEAP]
    full, sharded = tmp_path / "full", tmp_path / "sharded"
    assert run("faithfulness", [*args, "--output-dir", str(full)], capsys)[0] == 0
    for shard in ("2/3", "1/3", "3/3"):
        code, _, stderr = run("faithfulness", [*args, "--output-dir", str(sharded), "--shard", shard], capsys)
        assert code == 0, stderr
    assert sorted(p.name for p in (sharded / "shards").iterdir()) == ["1-of-3", "2-of-3", "3-of-3"]
    assert rows(sharded) == rows(full)
    for name in ("summary.csv", "comparison.csv", "curves_mean.csv"):
        assert (sharded / name).read_text() == (full / name).read_text(), name
    code, stdout, _ = run("faithfulness", ["--output-dir", str(sharded), "--summarize"], capsys)
    assert code == 0 and "6 of 6 images scored (shards present: 1-of-3, 2-of-3, 3-of-3)" in stdout
    # Another baseline, from the rows alone; an unknown one is refused and leaves the summary as it was.
    code, stdout, _ = run("faithfulness", ["--output-dir", str(sharded), "--summarize", "--baseline", "saliency"],
                          capsys)  # fmt: skip
    comparison = list(csv.DictReader(open(sharded / "comparison.csv")))
    assert code == 0 and "Paired comparison with saliency" in stdout
    assert {r["baseline"] for r in comparison} == {"saliency"} and {r["method"] for r in comparison} == {
        "lime",
        "control_random",
    }
    before = (sharded / "comparison.csv").read_text()
    code, _, stderr = run("faithfulness", ["--output-dir", str(sharded), "--summarize", "--baseline", "gradcam"],
                          capsys)  # fmt: skip
    assert code == 2 and "--baseline gradcam: not among the methods" in stderr
    assert (sharded / "comparison.csv").read_text() == before


def test_unreadable_images_and_undefined_scores_are_rows_with_reasons(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "flat"
    folder.mkdir()
    Image.fromarray(small_photo(80)).save(folder / "good.png")
    (folder / "broken.jpg").write_text("not an image")

    def constant(context):
        return Attribution(np.full(context.image.shape[:2], 0.5, dtype=np.float32))

    def failing(context):
        raise ValueError("cannot explain this one")

    out = tmp_path / "out"
    methods = "test_constant,saliency,test_failing"
    args = ["--data-dir", str(folder), "--output-dir", str(out), "--methods", methods, *CHEAP]  # fmt: skip
    with (
        REGISTRY.registered(ExplainerSpec("test_constant", constant, "constant")),
        REGISTRY.registered(ExplainerSpec("test_failing", failing, "fails")),
    ):
        code, _, stderr = run("faithfulness", args, capsys)
    assert code == 1 and "broken.jpg" in stderr and "warning: good.png: test_failing failed" in stderr
    scores = list(csv.DictReader(open(out / "scores.csv")))
    assert len(scores) == 2 * 3 * 8
    failed = [r for r in scores if r["method"] == "test_failing" and r["image"] == "good.png"]
    assert all(r["value"] == "nan" for r in failed)
    assert {r["reason"] for r in failed} == {
        "test_failing failed on this image: ValueError: cannot explain this one"
    }
    broken = [r for r in scores if r["image"] == "broken.jpg"]
    assert all(r["value"] == "nan" and r["reason"].startswith("image could not be read") for r in broken)
    constant_rows = {
        r["metric"]: r for r in scores if r["image"] == "good.png" and r["method"] == "test_constant"
    }
    for metric in ("FaithfulnessCorrelation", "FaithfulnessEstimate", "IROF", "Deletion", "Insertion"):
        assert constant_rows[metric]["value"] == "nan" and "constant" in constant_rows[metric]["reason"]
    assert "broken.jpg" in json.loads((out / "manifest.json").read_text())["failures"]
    summary = {(r["method"], r["metric"]): r for r in csv.DictReader(open(out / "summary.csv"))}
    assert (
        summary[("test_constant", "Deletion")]["n_nan"] == "2"
        and summary[("saliency", "Deletion")]["n"] == "1"
    )


def test_a_changed_setting_does_not_mix_with_an_earlier_run(tmp_path, capsys):
    out = tmp_path / "cx"
    base = ["--output-dir", str(out), "--methods", "control_random", *COMPLEXITY_CHEAP]
    assert run("complexity", base, capsys)[0] == 0
    code, _, stderr = run("complexity", [*base, "--seed", "1"], capsys)
    assert code == 2 and "other settings (settings differ" in stderr and len(stderr.strip().splitlines()) == 1
    assert run("complexity", [*base, "--seed", "1", "--overwrite"], capsys)[0] == 0
    assert {r["seed"] for r in csv.DictReader(open(out / "scores.csv"))} == {"1"}


def test_a_second_live_run_on_the_same_folder_is_refused(tmp_path):
    folder = tmp_path / "busy"
    with run_lock(folder):
        with pytest.raises(Exception, match="being written by another run"):
            with run_lock(folder):
                pass
    with run_lock(folder):  # released: free again
        assert (folder / ".lock").read_text().split() == [socket.gethostname(), str(os.getpid())]


def make_bad_folders(tmp_path: Path) -> None:
    """A class folder beside a folder that is no WordNet id, and a flat folder."""
    (tmp_path / "mixed" / imagenet_wnids()[0]).mkdir(parents=True)
    (tmp_path / "mixed" / "cats").mkdir()
    (tmp_path / "flatimgs").mkdir()
    Image.fromarray(small_photo(40)).save(tmp_path / "flatimgs" / "a.png")


def bad_cases(tmp_path: Path) -> dict[str, tuple[str, list[str]]]:
    """Tool and arguments of each bad-input case (folders from make_bad_folders)."""
    mixed, flat = tmp_path / "mixed", tmp_path / "flatimgs"
    return {
        "missing data dir": ("faithfulness", ["--data-dir", str(tmp_path / "nope")]),
        "folder beside class folders": ("faithfulness", ["--data-dir", str(mixed)]),
        "unknown method": ("faithfulness", ["--methods", "lime,magic"]),
        "unknown metric": ("faithfulness", ["--metrics", "IROF,Nonsense"]),
        "metric of the other tool": ("complexity", ["--metrics", "IROF"]),
        "bad --set": ("faithfulness", ["--set", "IROF.speed=3"]),
        "bad --set value": ("faithfulness", ["--set", "Deletion.step=-4"]),
        "bad shard": ("faithfulness", ["--shard", "3/2"]),
        "classes of a flat folder": ("complexity", ["--data-dir", str(flat), "--num-classes", "2"]),
        "true target without labels": ("complexity", ["--target", "true"]),
        "cuda without a gpu": ("complexity", ["--device", "cuda"]),
        "summarize an empty folder": ("complexity", ["--summarize"]),
        "baseline not run": ("complexity", ["--methods", "control_random,saliency", "--baseline", "lime"]),
        "sufficiency batch of one": ("faithfulness", ["--sufficiency-batch", "1"]),
        "group size not dividing the pixels": (
            "faithfulness",
            ["--set", "FaithfulnessEstimate.features_in_step=1000"],
        ),
    }


@pytest.mark.parametrize("case", list(bad_cases(Path("x"))))
def test_bad_input_is_one_line_exit_2_and_no_output(case, tmp_path, capsys, monkeypatch):
    if case == "cuda without a gpu":
        monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    make_bad_folders(tmp_path)
    tool, args = bad_cases(tmp_path)[case]
    out = tmp_path / "out"
    code, _, stderr = run(tool, [*COMPLEXITY_CHEAP, *args, "--output-dir", str(out)], capsys)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert not out.exists() or not any(out.iterdir())


def test_the_wordnet_table_is_imagenets_class_order():
    wnids = imagenet_wnids()
    assert len(wnids) == len(set(wnids)) == 1000 and list(wnids) == sorted(wnids)
    names = imagenet_class_names()
    for index, wnid, name in [(0, "n01440764", "tench"), (285, "n02124075", "Egyptian cat"),
                              (967, "n07920052", "espresso"), (999, "n15075141", "toilet tissue")]:  # fmt: skip
        assert wnids[index] == wnid and names[index] == name


def test_selection_and_groups_follow_the_seed(imagenet_folder):
    dataset = discover(imagenet_folder)
    assert dataset.layout == "imagenet" and dataset.num_images == 6
    first = [image.key for image in select(dataset, 1, 2, seed=0)]
    assert first == [image.key for image in select(dataset, 1, 2, seed=0)] and len(first) == 2
    assert len({tuple(image.key for image in select(dataset, 1, 2, seed=s)) for s in range(8)}) > 1
    groups = make_groups(select(dataset, None, None, 0), 4, seed=0)
    assert [len(g.images) for g in groups] == [4, 2]
    assert [g.index for g in shard_groups(groups, (2, 2))] == [1]


def test_run_benchmark_is_the_command_as_one_library_call(tmp_path, capsys):
    """A request made in Python, without a command line, gives the rows MyComplexity.py gives with the same flags,
    and the library prints nothing (quiet: no progress bar)."""
    from cnnxai.benchmark.request import BenchmarkRequest, FolderRequest
    from cnnxai.benchmark.runner import BenchmarkSettings
    from cnnxai.metrics import resolve_settings
    from cnnxai.reporting.benchmark import run_benchmark

    settings = BenchmarkSettings(tool="MyComplexity", methods=("saliency", "control_random"), metrics=("Sparseness",),
                                 metric_settings=resolve_settings(["Sparseness"]))  # fmt: skip
    request = BenchmarkRequest(settings, FolderRequest(str(tmp_path / "library"), device="cpu", quiet=True))
    status = run_benchmark(request)
    assert capsys.readouterr().out == ""
    assert status.exit_status == 0 and status.failures == {} and status.status["images"] == 3
    assert status.rows_folder == tmp_path / "library" and (tmp_path / "library" / "summary.md").exists()
    argv = ["--methods", "saliency,control_random", "--metrics", "Sparseness", "--device", "cpu", "--quiet"]
    code, out, _ = run("complexity", [*argv, "--output-dir", str(tmp_path / "command")], capsys)
    assert code == 0 and out.startswith((tmp_path / "library" / "summary.md").read_text().split("\n")[0])
    rows_of = rows(tmp_path / "library")
    assert len(rows_of) == 3 * 2 and rows_of == rows(tmp_path / "command")
