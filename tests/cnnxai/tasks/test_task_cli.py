"""CamLIME.py --task, Figures.py's application figures and Localisation.py --task end to end on the embedded models
(the synthetic detector and segmenter, trained once for this module; MTCNN from its wheel), and their bad inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnxai.cli import main
from cnnxai.figures.cli import main as figures_main
from cnnxai.groundtruth.cli import main as localisation_main
from cnnxai.metrics import LOCALISATION_METRICS
from cnnxai.tasks.face import portrait

FAST = ["--num-samples", "40", "--batch-size", "20", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module", autouse=True)
def model_cache(tmp_path_factory):
    """The default synthetic models, trained once for this module into a cache of its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNXAI_CACHE", str(tmp_path_factory.mktemp("task_models")))
        yield


@pytest.fixture(scope="module")
def portrait_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "astronaut.png"
    Image.fromarray(portrait()).save(path)
    return path


def run(args, capsys, tool=main, variant="camlime"):
    code = tool(variant, [*FAST, *args]) if tool is main else tool(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_face_explains_the_detectors_confidence_for_the_face(portrait_file, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run(["--task", "face", "--image-path", str(portrait_file), "--output-dir", str(out)],
                               capsys)  # fmt: skip
    assert code == 0, stderr
    folder = out / "astronaut"
    assert {p.name for p in folder.iterdir()} == {"explanation.png", "superpixels.csv", "attribution.npy",
                                                   "manifest.json"}  # fmt: skip
    manifest = json.loads((folder / "manifest.json").read_text())
    task = manifest["task"]
    assert task["task"] == "face" and task["class_name"] == "face" and task["score"] > 0.99
    assert manifest["explainers"]["camlime"]["method"] == "gradcamelementwise"  # the task's CAM
    assert manifest["explainers"]["camlime"]["layers"] == ["task.pnet.prelu3"]
    x1, y1, x2, y2 = task["box"]
    assert 80 < x1 < x2 < 145 and 20 < y1 < y2 < 95  # her face, in the 256-pixel frame
    assert manifest["image"]["frame_size_wh"] == [256, 256]
    attribution = np.load(folder / "attribution.npy")
    inside = np.zeros_like(attribution, dtype=bool)
    inside[int(y1) : int(y2), int(x1) : int(x2)] = True
    peak = np.unravel_index(np.argmax(attribution), attribution.shape)
    assert inside[peak]
    assert "face" in stdout


def test_detection_and_segmentation_explain_their_own_sample_scene(tmp_path, capsys):
    for task in ("detection", "segmentation"):
        out = tmp_path / task
        code, _, stderr = run(["--task", task, "--output-dir", str(out), "--compare", "rise",
                               "--explainer-option", "rise.masks=50"], capsys)  # fmt: skip
        assert code == 0, stderr
        (folder,) = out.iterdir()
        assert folder.name.startswith("scene") and (folder / "rise.npy").is_file()
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["task"]["task"] == task and manifest["image"]["frame_size_wh"] == [96, 96]
        assert manifest["explainers"]["camlime"]["segmenter"] == "slic"
        rows = list(csv.DictReader(open(folder / "superpixels.csv")))
        assert len(rows) > 20  # SLIC on the 96-pixel scene, not quickshift's dozen
        if task == "detection":
            assert manifest["task"]["score"] >= 0.5 and manifest["task"]["given"] == "index"
        else:
            assert manifest["task"]["pixels"] > 0


def test_a_given_box_and_a_class_by_name(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run(["--task", "detection", "--output-dir", str(out), "--box", "40,45,75,80"], capsys)
    assert code == 0, stderr
    task = json.loads(next(out.iterdir()).joinpath("manifest.json").read_text())["task"]
    assert task["given"] == "box" and task["box"] == [40.0, 45.0, 75.0, 80.0] and task["class_name"] == "disc"
    assert 0 < task["score"] < 1  # IoU with the disc's detection below 1


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--task", "detection", "--box-index", "9"], "--box-index 9: only"),
        (["--task", "detection", "--box", "0,0,200,200"], "outside the image"),
        (["--task", "detection", "--box", "5,5,1,1"], "x1 < x2"),
        (["--task", "detection", "--score-threshold", "0.99999"], "no detection with a score of at least"),
        (["--task", "detection", "--class", "hexagon"], "not a class of this model"),
        (["--task", "segmentation", "--class", "square"], "absent from the prediction"),
        (["--task", "segmentation", "--box-index", "0"], "--box-index applies to --task detection"),
        (["--task", "face", "--target", "3"], "--target and --top-labels"),
        (["--task", "face", "--face-index", "3"], "--face-index 3: only 1 face(s)"),
        (["--task", "detection", "--model", "fcn_resnet50"], "not a detection model"),
        (["--model", "shapes_detector"], "add --task detection"),
        (["--task", "face", "--weights", "x.pth"], "drop --weights"),
        (
            ["--task", "detection", "--model", "fasterrcnn_resnet50_fpn", "--weights", "nope.pth"],
            "no such file",
        ),
    ],
)
def test_bad_task_input_exits_2_with_one_line_and_no_output(arguments, message, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run([*arguments, "--output-dir", str(out)], capsys)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], stderr
    assert not out.exists() or not any(out.iterdir())


def test_no_face_found_is_one_line(tmp_path, capsys):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((128, 128, 3), 128, np.uint8)).save(grey)
    code, _, stderr = run(
        ["--task", "face", "--image-path", str(grey), "--output-dir", str(tmp_path / "o")], capsys
    )
    assert (
        code == 2
        and "no face with a score of at least 0.5" in stderr
        and len(stderr.strip().splitlines()) == 1
    )


@pytest.mark.parametrize("figure", ["detection", "segmentation", "face"])
def test_each_application_figure(figure, portrait_file, tmp_path, capsys):
    image = ["--image-path", str(portrait_file)] if figure == "face" else []
    code, stdout, stderr = run([figure, *image, "--num-samples", "40", "--explainer-option", "rise.masks=50",
                                "--output-dir", str(tmp_path), "--dpi", "50", "--quiet"], capsys, figures_main)  # fmt: skip
    assert code == 0, stderr
    stem = f"{figure}_astronaut" if figure == "face" else f"{figure}_scene0"
    assert (tmp_path / f"{stem}.png").is_file()
    manifest = json.loads((tmp_path / f"{stem}.json").read_text())
    assert (
        manifest["figure"] == figure and manifest["task"]["score"] > 0.5 and manifest["methods"] == ["rise"]
    )


def test_localisation_of_detections_writes_its_table(tmp_path, capsys):
    out = tmp_path / "loc"
    methods = ["gradlime", "camlime", "gradcam"]
    code, stdout, stderr = run(["--task", "detection", "--num-images", "2", "--methods", ",".join(methods),
                                "--num-samples", "60", "--output-dir", str(out), "--quiet", "--dpi", "40"],
                               capsys, localisation_main)  # fmt: skip
    assert code == 0, stderr
    rows = list(csv.DictReader(open(out / "scores.csv")))
    cases, rest = divmod(len(rows), len(methods) * len(LOCALISATION_METRICS))
    assert rest == 0 and cases >= 2  # one case per object found in the two scenes
    note = (out / "summary.md").read_text()
    assert "Localisation of detection explanations" in note and "| camlime |" in note
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["model"]["map"] > 0.9
        and manifest["explainer_options"]["camlime"]["method"] == "gradcamelementwise"
    )


def test_a_task_run_defaults_to_the_applications_methods():
    from cnnxai.groundtruth.benchmark import TASK_METHODS
    from cnnxai.groundtruth.report import LocalisationSettings

    assert LocalisationSettings(task="segmentation").methods == TASK_METHODS
    assert "sise" in LocalisationSettings().methods and "sise" not in TASK_METHODS
