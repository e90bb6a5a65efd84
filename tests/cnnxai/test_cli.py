"""GradLIME.py / CamLIME.py end to end on the embedded model, and every kind of bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnxai.cli import main
from tests.helpers import ROOT, small_photo

FAST = ["--num-samples", "24", "--batch-size", "12", "--segmenter", "slic", "--quiet", "--device", "cpu"]


def run_cli(variant, args, capsys):
    code = main(variant, [*FAST, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def photo_file(tmp_path) -> Path:
    path = tmp_path / "inputs" / "cat.png"
    path.parent.mkdir()
    Image.fromarray(small_photo(120)).save(path)
    return path


EXPLANATION_FILES = ["attribution.npy", "explanation.png", "manifest.json", "superpixels.csv"]  # per image


def test_gradlime_explains_the_sample_photo(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("gradlime", ["--output-dir", str(out)], capsys)
    assert code == 0, stderr
    folder = out / "chelsea"
    assert sorted(p.name for p in folder.iterdir()) == EXPLANATION_FILES
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["predicted"]["name"] in {"tabby", "tiger cat", "Egyptian cat"}
    assert (
        manifest["model"]["model"] == "efficientnet_lite0" and len(manifest["model"]["weights_sha256"]) == 64
    )
    assert (
        manifest["seed"] == 0 and manifest["options"]["num_samples"] == 24 and "torch" in manifest["versions"]
    )
    attribution = np.load(folder / "attribution.npy")
    assert (
        attribution.shape == (224, 224) and attribution.dtype == np.float32 and np.abs(attribution).sum() > 0
    )
    rows = list(csv.DictReader(open(folder / "superpixels.csv")))
    assert list(rows[0]) == [
        "label",
        "segment_id",
        "area_px",
        "prior",
        "weight",
        "attribution",
        "rank",
        "lime_weight",
        "lime_rank",
        "samples",
    ]
    assert {row["samples"] for row in rows} == {"24"} and manifest["samples"]["samples"] == 24
    assert sum(int(r["area_px"]) for r in rows) == 224 * 224
    assert max(float(r["prior"]) for r in rows) == 1.0
    for r in rows:  # b = a * w, written at full precision
        assert float(r["attribution"]) == pytest.approx(
            float(r["prior"]) * float(r["weight"]), rel=1e-12, abs=1e-300
        )
    assert Image.open(folder / "explanation.png").size[0] > 1500
    assert "chelsea" in stdout and not list(out.glob(".*partial*"))


def test_same_seed_gives_byte_identical_superpixels_csv(tmp_path, photo_file, capsys):
    for name in ("a", "b"):
        code, _, err = run_cli(
            "gradlime",
            ["--image-path", str(photo_file), "--output-dir", str(tmp_path / name), "--seed", "5"],
            capsys,
        )
        assert code == 0, err
    first, second = ((tmp_path / n / "cat" / "superpixels.csv").read_bytes() for n in ("a", "b"))
    assert first == second
    code, _, _ = run_cli(
        "gradlime",
        ["--image-path", str(photo_file), "--output-dir", str(tmp_path / "c"), "--seed", "6"],
        capsys,
    )
    assert (tmp_path / "c" / "cat" / "superpixels.csv").read_bytes() != first


def test_camlime_several_layers_methods_and_top_labels(tmp_path, photo_file, capsys):
    args = ["--image-path", str(photo_file), "--output-dir", str(tmp_path), "--method", "layercam",
            "--layers", "_blocks.10,_swish", "--fusion", "superpixel", "--top-labels", "2", "--hide-color", "mean"]  # fmt: skip
    code, _, err = run_cli("camlime", args, capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "cat" / "manifest.json").read_text())
    assert manifest["cam"] == {
        "method": "layercam",
        "layers": ["_blocks.10", "_swish"],
        "fusion": "superpixel",
        "aug_smooth": False,
        "eigen_smooth": False,
        "prior_floor": 0.0,
        "prior_strength": 1.0,
        "mode": "feature",
    }
    assert len(manifest["explained_labels"]) == 2
    labels = {int(r["label"]) for r in csv.DictReader(open(tmp_path / "cat" / "superpixels.csv"))}
    assert labels == set(manifest["explained_labels"])
    assert (tmp_path / "cat" / f"attribution_class{manifest['explained_labels'][1]}.npy").exists()


def test_folder_with_one_bad_file_goes_on_and_exits_1(tmp_path, photo_file, capsys):
    (photo_file.parent / "broken.jpg").write_text("not a jpeg")
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        "gradlime", ["--image-path", str(photo_file.parent), "--output-dir", str(out)], capsys
    )
    assert code == 1
    assert "broken.jpg" in stderr
    assert (out / "cat" / "explanation.png").exists() and not (out / "broken").exists()
    failures = list(csv.DictReader(open(out / "failures.csv")))
    assert len(failures) == 1 and failures[0]["path"].endswith("broken.jpg")


def _make_bad_files(tmp_path: Path) -> None:
    """The broken, empty and tiny files the bad-input cases point at."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello, I am not a picture\n")
    Image.fromarray(small_photo(64)).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    Image.fromarray(np.zeros((6, 9, 3), dtype=np.uint8)).save(tmp_path / "tiny.png")


def _bad_args(tmp_path: Path) -> dict[str, list[str]]:
    """Command-line arguments of each bad-input case (files from _make_bad_files)."""
    good = str(tmp_path / "whole.jpg")
    return {
        "missing path": ["--image-path", str(tmp_path / "nope.jpg")],
        "folder without images": ["--image-path", str(tmp_path / "empty")],
        "zero-byte image": ["--image-path", str(tmp_path / "zero.jpg")],
        "truncated image": ["--image-path", str(tmp_path / "truncated.jpg")],
        "corrupt image": ["--image-path", str(tmp_path / "corrupt.png")],
        "text file named .jpg": ["--image-path", str(tmp_path / "text.jpg")],
        "unknown model": ["--image-path", good, "--model", "resnet9000"],
        "unknown layer": ["--image-path", good, "--layers", "_blocks.99"],
        "missing weights": ["--image-path", good, "--model", "resnet18", "--offline"],
        "missing weights file": [
            "--image-path",
            good,
            "--model",
            "vgg16",
            "--weights",
            str(tmp_path / "none.pth"),
        ],
        "num samples below 2": ["--image-path", good, "--num-samples", "1"],
        "batch size below 1": ["--image-path", good, "--batch-size", "0"],
        "target out of range": ["--image-path", good, "--target", "1000"],
        "image too small": ["--image-path", str(tmp_path / "tiny.png")],
        "nonsense option": ["--image-path", good, "--cam-mode", "magic"],
        "bad hide colour": ["--image-path", good, "--hide-color", "purple"],
        "unknown compare method": ["--image-path", good, "--compare", "lime,magic_cam"],
        "missing normlime reference": [
            "--image-path",
            good,
            "--compare",
            "normlime",
            "--normlime-reference",
            str(tmp_path / "refs"),
        ],
        "unknown explainer option": ["--image-path", good, "--explainer-option", "gradlime.num_sample=30"],
        "explainer option of an explainer not in the run": [
            "--image-path",
            good,
            "--explainer-option",
            "rise.masks=3",
        ],
        "explainer option with a bad value": [
            "--image-path",
            good,
            "--compare",
            "rise",
            "--explainer-option",
            "rise.masks=many",
        ],
        "malformed explainer option": ["--image-path", good, "--explainer-option", "rise.masks"],
        "num samples neither a number nor auto": ["--image-path", good, "--num-samples", "lots"],
        "prior floor of 1": ["--image-path", good, "--prior-floor", "1"],
        "prior strength of 0": ["--image-path", good, "--prior-strength", "0"],
        "auto with the legacy mode": ["--image-path", good, "--num-samples", "auto", "--cam-mode", "legacy"],
    }


CASE_NAMES = list(_bad_args(Path("in")))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_input_is_one_line_exit_2_and_no_output(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached torchvision weights
    _make_bad_files(tmp_path / "in")
    args = _bad_args(tmp_path / "in")[case]
    out = tmp_path / "out"
    code, _, stderr = run_cli("gradlime", [*args, "--output-dir", str(out)], capsys)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("tool", ["GradLIME.py", "CamLIME.py", "MyFaithfulness.py", "MyComplexity.py", "Figures.py",
                                  "Localisation.py", "MNIST1D.py"])  # fmt: skip
def test_an_output_dir_that_is_a_file_is_refused_before_any_work(tool, tmp_path):
    taken = tmp_path / "taken.txt"
    taken.write_text("a file")
    args = ["layers"] if tool == "Figures.py" else []
    done = subprocess.run([sys.executable, str(ROOT / tool), *args, "--output-dir", str(taken)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "is a file" in lines[0] and str(taken) in lines[0]
    assert taken.read_text() == "a file" and done.stdout == ""


def test_error_messages_name_the_problem_and_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    _make_bad_files(tmp_path / "in")
    cases = _bad_args(tmp_path / "in")
    expectations = {
        "unknown layer": "close matches: _blocks.9",
        "missing weights": "resnet18-f37072fd.pth",
        "target out of range": "0..999",
        "text file named .jpg": "text.jpg",
        "image too small": "9x6",
        "unknown explainer option": "close matches: num_samples",
        "explainer option of an explainer not in the run": "not an explainer of this run",
    }
    for case, needle in expectations.items():
        _, _, stderr = run_cli("gradlime", [*cases[case], "--output-dir", str(tmp_path / "out")], capsys)
        assert needle in stderr, (case, stderr)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_exit_2(tmp_path, capsys):
    code = main("gradlime", ["--device", "cuda", "--output-dir", str(tmp_path)])
    stderr = capsys.readouterr().err
    assert code == 2 and "CUDA is not available" in stderr and "--device cpu" in stderr


def test_weights_file_for_a_torchvision_model(tmp_path, photo_file, capsys):
    import torchvision

    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    out = tmp_path / "out"
    code, _, err = run_cli(
        "gradlime",
        [
            "--image-path",
            str(photo_file),
            "--model",
            "resnet18",
            "--weights",
            str(weights),
            "--output-dir",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    manifest = json.loads((out / "cat" / "manifest.json").read_text())
    assert manifest["cam"]["layers"] == ["layer4"] and manifest["model"]["weights_file"] == str(weights)
    wrong = tmp_path / "wrong.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), wrong)
    code, _, err = run_cli(
        "gradlime",
        [
            "--image-path",
            str(photo_file),
            "--model",
            "resnet18",
            "--weights",
            str(wrong),
            "--output-dir",
            str(out),
        ],
        capsys,
    )
    assert code == 2 and "does not fit resnet18" in err


def test_entry_points_run_as_scripts(tmp_path):
    for script in ("GradLIME.py", "CamLIME.py"):
        help_text = subprocess.run(
            [sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        assert "--image-path" in help_text and ("--method" in help_text) == (script == "CamLIME.py")
    failed = subprocess.run(
        [sys.executable, "GradLIME.py", "--image-path", str(tmp_path / "missing.png")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1 and "no such file" in failed.stderr


@pytest.mark.parametrize(
    "name", ["resnet18", "mobilenet_v2", "googlenet", "alexnet", "densenet121", "inception_v3"]
)
def test_torchvision_entries_load_a_weights_file_and_their_default_layers_exist(name, tmp_path):
    """A state dict of torchvision's own architecture (as the published files are) loads, runs and has the
    default CAM layer. Random weights stand in for the real ones, which cannot be downloaded here."""
    from cam_ext import resolve_layers
    from cnnxai.zoo import MODELS, _torchvision_architecture, load_model

    weights = tmp_path / f"{name}.pth"
    torch.save(_torchvision_architecture(MODELS[name].torchvision_name).state_dict(), weights)
    model, info = load_model(name, weights, "cpu")
    assert info["weights_file"] == str(weights) and not model.training
    assert [n for n, _ in resolve_layers(model, list(MODELS[name].layers))] == list(MODELS[name].layers)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


@pytest.mark.parametrize("name", ["vgg16", "vgg19", "resnet34", "resnet50"])
def test_default_layers_of_the_larger_models_exist(name):
    from cam_ext import resolve_layers
    from cnnxai.zoo import MODELS, _torchvision_architecture

    model = _torchvision_architecture(MODELS[name].torchvision_name)
    assert len(resolve_layers(model, list(MODELS[name].layers))) == len(MODELS[name].layers)


def test_uniform_image_with_one_superpixel_is_exit_2(tmp_path, capsys):
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((64, 64, 3), 128, dtype=np.uint8)).save(flat)
    out = tmp_path / "out"
    code = main(
        "gradlime",
        ["--image-path", str(flat), "--segmenter", "felzenszwalb", "--quiet", "--output-dir", str(out)],
    )
    stderr = capsys.readouterr().err
    assert code == 2 and "single superpixel" in stderr and stderr.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())


def test_compare_adds_panels_and_maps_and_reuses_the_perturbations(tmp_path, photo_file, capsys):
    out = tmp_path / "out"
    args = [
        "--image-path",
        str(photo_file),
        "--output-dir",
        str(out),
        "--compare",
        "lime,gradcam,control_random",
    ]
    code, _, err = run_cli("gradlime", args, capsys)
    assert code == 0, err
    folder = out / "cat"
    maps = {name: np.load(folder / f"{name}.npy") for name in ("lime", "gradcam", "control_random")}
    assert all(m.shape == (224, 224) and m.dtype == np.float32 for m in maps.values())
    # --compare lime is the run's own LIME fit: same perturbations, same attributions as superpixels.csv
    rows = [r for r in csv.DictReader(open(folder / "superpixels.csv"))]
    segments_weight = {int(r["segment_id"]): float(r["lime_weight"]) for r in rows}
    assert sorted(np.unique(maps["lime"]).tolist()) == sorted(
        {np.float32(w).item() for w in segments_weight.values()}
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"lime.npy", "gradcam.npy", "control_random.npy"} <= set(manifest["files"])
    assert Image.open(folder / "explanation.png").size[1] > 1000  # 7 panels wrap onto a second row


def test_auto_samples_are_recorded_in_the_manifest_and_the_table(tmp_path, photo_file, capsys):
    args = ["--image-path", str(photo_file), "--output-dir", str(tmp_path), "--num-samples", "auto",
            "--max-samples", "160", "--top-k", "3", "--prior-strength", "10", "--prior-floor", "0.1"]  # fmt: skip
    code, _, err = run_cli("gradlime", args, capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "cat" / "manifest.json").read_text())
    samples = manifest["samples"]
    assert samples["adaptive"] and samples["samples"] in (100, 150, 160) and samples["top_k"] == 3
    assert manifest["cam"]["prior_strength"] == 10.0 and manifest["cam"]["prior_floor"] == 0.1
    rows = list(csv.DictReader(open(tmp_path / "cat" / "superpixels.csv")))
    assert {row["samples"] for row in rows} == {str(samples["samples"])}
    assert min(float(row["prior"]) for row in rows) >= 0.1
