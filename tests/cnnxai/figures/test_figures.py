"""Figures.py: every figure on a tiny model with small budgets, its panels, files, determinism and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

import cnnxai.figures.cli as figures_cli
import cnnxai.zoo as zoo
from cnnxai.errors import UserInputError
from cnnxai.figures.catalog import FIGURES, auto_choose_num_features
from cnnxai.figures.cli import main
from tests.helpers import make_tiny_cnn, small_photo

BUDGET = [
    "--num-samples", "24", "--segmenter", "slic", "--rise-masks", "16", "--ig-steps", "4", "--curve-step", "12544",
    "--normlime-samples", "12", "--normlime-clusters", "3", "--samples", "6", "--device", "cpu", "--quiet",
]  # fmt: skip
TWO_LAYERS = ["--layers", "1", "4"]  # the tiny CNN's two ReLUs: full and half resolution

# figure -> (extra arguments, panels expected)
CASES = {
    "models": (["--models", "efficientnet_lite0,resnet18"], 4),  # resnet18 has no weights here: skipped
    "layers": ([], 1 + 2 * 3),
    "fusion-depth": (["--layers", "1", "2", "4"], (1 + 2 * 3) + (1 + 2 * 4)),  # S2 (blank cells), S3
    "cam-methods": ([], 7 * 5),
    "cam-methods-layers": (["--methods", "gradcam,layercam"], 2 * (1 + 2 * 2)),
    "weight-feature": (["--methods", "gradcam,layercam"], 2 * 4),
    "compare": (["--methods", "ig,gradcam,lime"], 1 + 4),
    "rgb": ([], 3 * 4),
    "deletion-insertion": (["--methods", "saliency"], 1 + 2),
    "normlime": ([], 2 + 3 * 5),
    "neighbourhood": ([], 6),
}


@pytest.fixture(autouse=True)
def tiny_models(monkeypatch, tmp_path):
    """Every zoo model is the tiny CNN (1000 outputs), except resnet18, whose weights are 'missing'."""

    def load(name, weights=None, device="cpu", *_):
        if name == "resnet18":
            raise UserInputError("no weights for resnet18 in torch's cache")
        return make_tiny_cnn(num_classes=1000).to(device), {"model": name, "weights_file": None, "weights_sha256": "0"}

    monkeypatch.setattr(figures_cli, "load_model", load)  # the other models of figure 'models'
    monkeypatch.setattr(zoo, "load_model", load)  # --model
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # NormLIME's cache, never the user's


@pytest.fixture
def photo_file(tmp_path) -> Path:
    path = tmp_path / "cat.png"
    Image.fromarray(small_photo(96)).save(path)
    return path


def draw(name, args, tmp_path, photo_file, monkeypatch, capsys):
    """Run Figures.py; returns (exit code, stderr, output folder, panel titles of the figure drawn)."""
    drawn = []
    original = figures_cli.save

    def keep(fig, *rest, **kwargs):
        panels = [a for a in fig.axes if a.get_label() == "panel" and a.get_visible()]
        drawn.append([a.get_title() for a in panels])
        return original(fig, *rest, **kwargs)

    monkeypatch.setattr(figures_cli, "save", keep)
    out = tmp_path / "figs"
    code = main(
        [name, "--image-path", str(photo_file), "--output-dir", str(out), *TWO_LAYERS, *BUDGET, *args]
    )
    captured = capsys.readouterr()
    return code, captured.err, out, drawn[0] if drawn else None


def test_the_list_names_every_figure_of_the_issue(capsys):
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out
    for name in ("models", "layers", "cam-methods", "cam-methods-layers", "weight-feature", "fusion-depth",
                 "compare", "rgb", "deletion-insertion", "normlime", "neighbourhood"):  # fmt: skip
        assert name in FIGURES and name in listed


@pytest.mark.parametrize("name", list(CASES))
def test_each_figure_draws_its_panels(name, tmp_path, photo_file, monkeypatch, capsys):
    args, expected = CASES[name]
    code, stderr, out, titles = draw(name, args, tmp_path, photo_file, monkeypatch, capsys)
    assert code == 0, stderr
    assert len(titles) == expected, titles
    assert all(titles), titles  # every panel says what it shows
    assert (out / f"{name}_cat.png").exists()
    manifest = json.loads((out / f"{name}_cat.json").read_text())
    assert manifest["figure"] == name and manifest["seed"] == 0 and "torch" in manifest["versions"]
    if name == "models":
        assert "resnet18" in manifest["skipped_models"] and "skipped resnet18" in stderr


def test_weight_feature_rows_plot_their_own_curves(tmp_path, photo_file, monkeypatch, capsys):
    """CAM_LIME_w_f2 plotted the last mode's weights in every row; here each row's curve is its own fit."""
    curves = []
    original = figures_cli.save

    def keep(fig, *rest, **kwargs):
        for axis in fig.axes:
            if axis.get_title() == "Weight by superpixel":
                curves.append(
                    [
                        tuple(line.get_ydata())
                        for line in axis.get_lines()
                        if line.get_label().startswith("Ours")
                    ]
                )
        return original(fig, *rest, **kwargs)

    monkeypatch.setattr(figures_cli, "save", keep)
    args = [
        "weight-feature",
        "--image-path",
        str(photo_file),
        "--output-dir",
        str(tmp_path),
        "--methods",
        "gradcam,eigencam",
    ]
    assert main([*args, *TWO_LAYERS, *BUDGET]) == 0
    assert len(curves) == 2 and curves[0] != curves[1]


def test_same_seed_same_figure_and_pdf_on_request(tmp_path, photo_file, capsys):
    for folder, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        args = [
            "neighbourhood",
            "--image-path",
            str(photo_file),
            "--output-dir",
            str(tmp_path / folder),
            "--seed",
            seed,
        ]
        assert main([*args, *TWO_LAYERS, *BUDGET, "--pdf"]) == 0
    first, again, other = ((tmp_path / f / "neighbourhood_cat.png").read_bytes() for f in "abc")
    assert first == again and first != other
    assert (tmp_path / "a" / "neighbourhood_cat.pdf").read_bytes()[:4] == b"%PDF"


def test_paddlex_feature_count():
    import numpy as np

    segments = np.repeat(np.arange(4), 25).reshape(10, 10)  # four superpixels of 25 pixels
    weights = np.array([0.5, 0.3, -0.4, 0.2])  # positive shares 0.5, 0.3, 0.2
    assert auto_choose_num_features(weights, segments, 0.6) == 2  # 0.5, then 0.8 > 0.6
    assert auto_choose_num_features(weights, segments, 0.4) == 1
    assert auto_choose_num_features(np.array([-1.0, -2.0, -3.0, -4.0]), segments, 0.6) == 5  # none positive


@pytest.mark.parametrize(
    "args",
    [
        ["nonsense"],
        [],
        ["rgb", "--methods", "gradcam"],
        ["cam-methods", "--methods", "gradcam,magiccam"],
        ["compare", "--methods", "ig,magic"],
        ["rgb", "--image-path", "no/such.png"],
        ["fusion-depth", "--layers", "4"],
        ["models", "--models", "resnet18"],
        ["normlime", "--normlime-reference", "no/such/folder"],
    ],
    ids=[
        "unknown figure",
        "no figure",
        "methods where none",
        "unknown cam",
        "unknown explainer",
        "missing image",
        "one layer to fuse",
        "no model with weights",
        "missing reference",
    ],  # fmt: skip
)
def test_bad_input_is_one_line_exit_2_and_no_output(args, tmp_path, photo_file, capsys):
    out = tmp_path / "out"
    image = [] if "--image-path" in args else ["--image-path", str(photo_file)]
    code = main([*args, *image, "--output-dir", str(out), *BUDGET])
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("skipped")]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert not out.exists() or not any(out.iterdir())
