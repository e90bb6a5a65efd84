"""MyStability.py end to end on a tiny model and two small images: every output and its consistency, resuming,
shards, undefined top-k, bad input."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnxai.zoo as zoo
from cnnxai.stability.cli import main
from cnnxai.stability.measures import kendall, top_k_jaccard, top_k_stability
from cnnxai.stability.rows import ROW_COLUMNS
from lime_ext.adaptive import rounds
from tests.helpers import make_tiny_cnn, small_photo

AUTO_SPEC = "lime[num_samples=auto,max_samples=160]"
METHODS = f"lime,gradlime[cam_mode=importance,kernel_width=0.5],kernel_shap,{AUTO_SPEC}"
CHEAP = [
    "--num-samples-grid", "20,40", "--seeds", "2", "--reference-samples", "60", "--match-samples", "40",
    "--curve-steps", "5", "--layers", "4", "--segmenter", "slic", "--device", "cpu", "--quiet",
]  # fmt: skip
OUTPUTS = {"rows.csv", "summary.csv", "summary.md", "comparison.csv", "forwards_to_match.csv", "forwards_to_match.md", "curves.png",
           "curves.pdf", "manifest.json"}  # fmt: skip


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    """The zoo hands out a tiny CNN; two small images in a folder."""
    images = tmp_path_factory.mktemp("photos")
    for i in range(2):
        Image.fromarray(np.roll(small_photo(64), 17 * i, axis=1)).save(images / f"img{i}.png")

    def load(name, weights=None, device="cpu", *_):
        return make_tiny_cnn(num_classes=4).to(device), {
            "model": "tiny",
            "weights_file": None,
            "weights_sha256": "0",
        }

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zoo, "load_model", load)
        yield images


def run(args):
    return main(args)


def rows_of(folder: Path) -> list[dict]:
    """rows.csv of a run (and its shards) without the timing column, sorted."""
    found = []
    for place in [folder, *sorted((folder / "shards").glob("*"))]:
        if (place / "rows.csv").exists():
            found += [
                {k: v for k, v in r.items() if k != "seconds"}
                for r in csv.DictReader(open(place / "rows.csv"))
            ]
    return sorted(found, key=lambda r: (r["image"], r["method"], r["budget"], r["seed"]))


def without_seconds(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(path))]


@pytest.fixture(scope="module")
def whole(tool, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = run(["--data-dir", str(tool), "--methods", METHODS, "--output-dir", str(out), *CHEAP])
    assert code == 0
    return out, stdout.getvalue()


def test_a_run_writes_every_output_and_its_numbers_agree(whole):
    out, stdout = whole
    assert {p.name for p in out.iterdir()} >= OUTPUTS
    rows = list(csv.DictReader(open(out / "rows.csv")))
    assert tuple(rows[0]) == ROW_COLUMNS
    # per image: the reference, lime/gradlime/kernel_shap at 20 and 40 x 2 seeds, the auto method x 2 seeds
    assert len(rows) == 2 * (1 + 3 * 2 * 2 + 2)
    seeds = {"0", "1"}
    for row in rows:
        attributions = json.loads(row["attributions"])
        assert len(attributions) == int(row["superpixels"]) and row["target_class"] != ""
        assert 0 <= float(row["deletion_auc"]) <= 1 and 0 <= float(row["insertion_auc"]) <= 1
        if row["method"] == "reference":
            assert row["seed"] == "1000" and row["seed"] not in seeds and row["forwards"] == "60"
            assert row["reason"] == "the reference itself"
        elif row["method"] == AUTO_SPEC:
            assert row["budget"] == "auto" and int(row["forwards"]) in rounds(160) == [100, 150, 160]
        else:
            assert row["seed"] in seeds and row["forwards"] == row["budget"] and row["budget"] in ("20", "40")
            assert (row["r2"] == "nan") == (row["method"] == "kernel_shap")
    by_key = {(r["image"], r["method"], r["budget"], r["seed"]): r for r in rows}
    for row in rows:  # agreement with the reference as stored
        if row["method"] == "reference":
            continue
        mine = np.array(json.loads(row["attributions"]))
        reference = np.array(json.loads(by_key[(row["image"], "reference", "60", "1000")]["attributions"]))
        assert float(row["jaccard_vs_reference"]) == pytest.approx(top_k_jaccard(mine, reference, 5))
        assert float(row["kendall_vs_reference"]) == pytest.approx(kendall(mine, reference))
    summary = {(r["method"], r["budget"]): r for r in csv.DictReader(open(out / "summary.csv"))}
    assert set(summary) == {(m, b) for m in ("lime", "gradlime[cam_mode=importance,kernel_width=0.5]", "kernel_shap")
                            for b in ("20", "40")} | {(AUTO_SPEC, "auto"), ("reference", "60")}  # fmt: skip
    stabilities = [
        top_k_stability(
            [np.array(json.loads(by_key[(image, "lime", "20", s)]["attributions"])) for s in ("0", "1")], 5
        )
        for image in ("img0.png", "img1.png")
    ]
    assert float(summary[("lime", "20")]["top_k_stability"]) == pytest.approx(np.mean(stabilities))
    assert int(summary[("lime", "20")]["top_k_stability_n"]) == 2
    low, high = (
        float(summary[("lime", "20")]["top_k_stability_ci_low"]),
        float(summary[("lime", "20")]["top_k_stability_ci_high"]),
    )
    assert min(stabilities) - 1e-9 <= low <= high <= max(stabilities) + 1e-9  # two images: between them
    # comparison.csv: every other (method, N) against plain lime at --match-samples, per image, per measure
    comparison = {
        (r["method"], r["budget"], r["metric"]): r for r in csv.DictReader(open(out / "comparison.csv"))
    }
    assert set(comparison) == {(m, b, k) for m, b in set(summary) - {("lime", "40")} for k in (
        "top_k_stability", "kendall_across_seeds", "jaccard_vs_reference", "kendall_vs_reference", "deletion_auc",
        "insertion_auc", "r2")}  # fmt: skip
    at_40 = [
        top_k_stability(
            [np.array(json.loads(by_key[(image, "lime", "40", s)]["attributions"])) for s in ("0", "1")], 5
        )
        for image in ("img0.png", "img1.png")
    ]
    row = comparison[("lime", "20", "top_k_stability")]
    assert row["baseline"] == "lime N=40" and row["n_pairs"] == "2" and row["direction"] == "higher"
    assert float(row["mean_diff"]) == pytest.approx(np.mean(stabilities) - np.mean(at_40))
    assert comparison[("reference", "60", "top_k_stability")]["n_pairs"] == "0"  # undefined for the reference
    chosen = [int(r["forwards"]) for r in rows if r["method"] == AUTO_SPEC]
    assert float(summary[(AUTO_SPEC, "auto")]["forwards"]) == pytest.approx(np.mean(chosen))
    assert math.isnan(float(summary[("reference", "60")]["top_k_stability"]))
    match = {r["method"]: r for r in csv.DictReader(open(out / "forwards_to_match.csv"))}
    assert set(match) == {"lime", "gradlime[cam_mode=importance,kernel_width=0.5]", "kernel_shap", AUTO_SPEC}
    base = float(summary[("lime", "40")]["top_k_stability"])
    for method, row in match.items():
        budgets = ["auto"] if method == AUTO_SPEC else ["20", "40"]
        good = [b for b in budgets if float(summary[(method, b)]["top_k_stability"]) >= base]
        if good:
            forwards = float(summary[(method, good[0])]["forwards"])
            assert float(row["stability_forwards"]) == forwards
            assert float(row["stability_ratio"]) == pytest.approx(40 / forwards, abs=0.005)
        else:
            assert row["stability_forwards"] == "not reached"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["seeds"] == [0, 1] and manifest["grid"] == [20, 40]
    assert manifest["reference"]["seed"] == 1000 and manifest["reference"]["num_samples"] == 60
    gradlime = manifest["methods"]["gradlime[cam_mode=importance,kernel_width=0.5]"]
    assert gradlime["options"]["layers"] == ["4"] and gradlime["options"]["kernel_width"] == 0.5
    assert gradlime["options"]["cam_mode"] == "importance" and gradlime["budgets"] == [20, 40]
    assert manifest["methods"][AUTO_SPEC]["budgets"] == ["auto"]
    assert "| lime | 20 |" in stdout and "forwards for top-k stability" in stdout


def test_plain_lime_at_the_match_samples_is_always_run(tool, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "--data-dir",
        str(tool),
        "--per-class",
        "1",
        "--methods",
        "kernel_shap",
        "--output-dir",
        str(out),
        *CHEAP,
    ]
    assert run([*args, "--top-k", "500"]) == 0
    rows = list(csv.DictReader(open(out / "rows.csv")))
    assert {(r["method"], r["budget"]) for r in rows} == {("kernel_shap", "20"), ("kernel_shap", "40"),
                                                          ("lime", "40"), ("reference", "60")}  # fmt: skip
    # top-k past the superpixels: NaN with its reason, and nothing can match
    for row in rows:
        if row["method"] != "reference":
            assert math.isnan(float(row["jaccard_vs_reference"])) and "top-k 500 >=" in row["reason"]
    match = list(csv.DictReader(open(out / "forwards_to_match.csv")))
    assert {r["stability_forwards"] for r in match} == {"not reached"}
    assert "kernel_shap" in capsys.readouterr().out


@pytest.mark.parametrize("cut", [5, 17])
def test_a_killed_run_resumes_to_the_same_rows(whole, tool, tmp_path, cut):
    out, _ = whole
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    lines = (copy / "rows.csv").read_text().splitlines(keepends=True)
    (copy / "rows.csv").write_text("".join(lines[: cut + 1]) + lines[cut + 1][:40])  # rows, then a cut line
    assert run(["--data-dir", str(tool), "--methods", METHODS, "--output-dir", str(copy), *CHEAP]) == 0
    assert rows_of(copy) == rows_of(out)
    assert json.loads((copy / "manifest.json").read_text())["units_resumed"] >= 1


def test_shards_and_summarize_equal_the_whole_run(whole, tool, tmp_path):
    out, _ = whole
    sharded = tmp_path / "run"
    for shard in ("1/2", "2/2"):
        args = ["--data-dir", str(tool), "--methods", METHODS, "--output-dir", str(sharded), "--shard", shard]
        assert run([*args, *CHEAP]) == 0
    assert run(["--output-dir", str(sharded), "--summarize"]) == 0
    assert rows_of(sharded) == rows_of(out)
    assert without_seconds(sharded / "summary.csv") == without_seconds(out / "summary.csv")
    assert (sharded / "forwards_to_match.csv").read_text() == (out / "forwards_to_match.csv").read_text()
    assert (sharded / "comparison.csv").read_text() == (out / "comparison.csv").read_text()
    assert {p.name for p in sharded.iterdir()} >= OUTPUTS - {"rows.csv", "manifest.json"}


def test_a_changed_setting_does_not_mix_with_an_earlier_run(whole, tool, tmp_path, capsys):
    out, _ = whole
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    before = (copy / "rows.csv").read_text()
    args = ["--data-dir", str(tool), "--methods", METHODS, "--output-dir", str(copy), *CHEAP, "--top-k", "3"]
    assert run(args) == 2
    assert "holds a run with other settings (settings differ" in capsys.readouterr().err
    assert (copy / "rows.csv").read_text() == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--num-samples-grid", "1,20"], "must be at least 2"),
        (["--methods", "gradlim"], "close matches: gradlime"),
        (["--methods", "lime[kernel_widht=1]"], "close matches: kernel_width"),
        (["--methods", "saliency"], "draws no samples"),
        (["--methods", "lime", "--explainer-option", "rise.masks=10"], "not an explainer of this run"),
        (["--methods", "lime", "--explainer-option", "lime.kernel_widht=1"], "close matches: kernel_width"),
        (["--seeds", "1"], "must be at least 2"),
        (["--top-k", "0"], "must be at least 1"),
        (["--shard", "3/2"], "expected i/n"),
        (["--data-dir", "/no/such/folder"], "no such folder"),
        (["--layers", "nope"], "--layers"),
        (["--summarize"], "no manifest.json"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tool, tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    args = ["--data-dir", str(tool), "--methods", "lime", *CHEAP, "--output-dir", str(out), *extra]
    assert run(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error:")
    assert not out.exists()


def test_run_stability_is_the_command_as_one_library_call(tool, tmp_path, capsys):
    """A request made in Python gives the rows MyStability.py gives with the same flags (--backend torch: the
    library's default backend, the command line's is auto); the library prints nothing."""
    from cnnxai.benchmark.request import FolderRequest
    from cnnxai.explainers import REGISTRY
    from cnnxai.reporting.stability import run_stability
    from cnnxai.stability.request import StabilityRequest
    from cnnxai.stability.runner import StabilitySettings
    from cnnxai.stability.specs import parse_specs
    from cnnxai.zoo import ModelRequest

    folder = FolderRequest(str(tmp_path / "library"), data_dir=str(tool), model=ModelRequest(layers=("4",)),
                           device="cpu", quiet=True)  # fmt: skip
    settings = StabilitySettings(methods=(), seeds=(0, 1), grid=(20, 40), top_k=5, reference_samples=60,
                                 reference_options={}, match_samples=40, curve_steps=5, segmenter="slic",
                                 hide_color=0)  # fmt: skip
    options = {"lime": {"segmenter": "slic", "hide_color": 0}}
    request = StabilityRequest(tuple(parse_specs("lime", REGISTRY)), options, settings, folder)
    status = run_stability(request)
    assert capsys.readouterr().out == ""
    assert status.exit_status == 0 and status.status["images"] == 2
    assert (tmp_path / "library" / "forwards_to_match.md").exists()
    argv = ["--data-dir", str(tool), *CHEAP, "--methods", "lime", "--backend", "torch"]
    assert run([*argv, "--output-dir", str(tmp_path / "command")]) == 0
    found = rows_of(tmp_path / "library")
    assert len(found) == 2 * (1 + 2 * 2) and found == rows_of(tmp_path / "command")
