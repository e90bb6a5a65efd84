"""The library entry point of GradLIME.py / CamLIME.py: ``explain_to_folder`` with an ``ExplainSettings`` writes
what the command line writes, and reports each image and the failures as data."""

from __future__ import annotations

import csv
import json
import pickle

import pytest
from PIL import Image

from cnnxai.cli import main
from cnnxai.errors import UserInputError
from cnnxai.explain_run import ExplainSettings
from cnnxai.reporting.explain import explain_to_folder
from cnnxai.zoo import ModelRequest
from tests.helpers import small_photo

TINY = "tests.model_factories:tiny_cnn"


@pytest.fixture
def photos(tmp_path):
    """A folder of a photo (in a subfolder) and a file that is no image."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(small_photo(72)).save(folder / "sub" / "cat.png")
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


def test_explain_to_folder_writes_what_the_command_line_writes(photos, tmp_path, capsys):
    settings = ExplainSettings(
        "camlime", {"camlime": {"num_samples": 24, "segmenter": "slic"}}, compare=("saliency",),
        image_path=str(photos), output_dir=str(tmp_path / "lib"), model=ModelRequest(TINY), device="cpu",
        batch_size=12, quiet=True,
    )  # fmt: skip
    assert pickle.loads(pickle.dumps(settings)) == settings  # what a Ray worker receives
    outcomes = []
    status = explain_to_folder(settings, outcomes.append)
    assert capsys.readouterr().out == ""  # the library prints nothing itself
    assert status.images == 2 and status.exit_status == 1
    assert [source for source, _ in status.failures] == [str(photos / "broken.png")]
    assert status.failures_file == tmp_path / "lib" / "failures.csv"
    by_source = {outcome.source: outcome for outcome in outcomes}
    cat = str(photos / "sub" / "cat.png")
    assert sorted(by_source) == sorted([str(photos / "broken.png"), cat])
    assert by_source[str(photos / "broken.png")].error and not by_source[cat].error
    assert by_source[cat].text.startswith(f"{cat}: ") and by_source[cat].text.count("\n") == 1  # quiet
    assert by_source[cat].text.endswith(f" -> {tmp_path / 'lib' / 'sub__cat'}\n")

    argv = ["--image-path", str(photos), "--model", TINY, "--num-samples", "24", "--segmenter", "slic",
            "--compare", "saliency", "--device", "cpu", "--batch-size", "12", "--quiet",
            "--backend", "torch"]  # the library runs in torch unless told (lime_ext.default_backend)  # fmt: skip
    assert main("camlime", [*argv, "--output-dir", str(tmp_path / "cli")]) == 1
    printed = capsys.readouterr()
    assert sorted(printed.out.splitlines()) == sorted(
        line.replace(str(tmp_path / "lib"), str(tmp_path / "cli"))
        for outcome in outcomes
        for line in outcome.text.splitlines()
    )
    assert "broken.png" in printed.err and "1 of 2 image(s) failed" in printed.err

    lib, cli = tmp_path / "lib", tmp_path / "cli"
    assert (lib / "failures.csv").read_bytes() == (cli / "failures.csv").read_bytes()
    for name in ("sub__cat",):
        files = sorted(p.name for p in (lib / name).iterdir())
        assert files == sorted(p.name for p in (cli / name).iterdir())
        assert "saliency.npy" in files and "explanation.png" in files
        for file in files:
            if file != "manifest.json":
                assert (lib / name / file).read_bytes() == (cli / name / file).read_bytes(), f"{name}/{file}"
        ours, theirs = (json.loads((folder / name / "manifest.json").read_text()) for folder in (lib, cli))
        for key in ("explainers", "seed", "image", "predicted", "lime", "cam", "samples"):
            assert ours[key] == theirs[key], key
        assert ours["options"]["variant"] == "camlime" and theirs["options"]["num_samples"] == 24


def test_a_single_image_and_bad_settings(photos, tmp_path):
    settings = ExplainSettings(
        "gradlime", {"gradlime": {"num_samples": 16, "segmenter": "slic"}}, image_path=str(photos / "sub" / "cat.png"),
        output_dir=str(tmp_path / "one"), model=ModelRequest(TINY), device="cpu", quiet=True,
    )  # fmt: skip
    outcomes = []
    status = explain_to_folder(settings, outcomes.append)
    assert status.exit_status == 0 and status.images == 1 and status.failures_file is None
    assert [o.source for o in outcomes] == [str(photos / "sub" / "cat.png")]
    assert (tmp_path / "one" / "cat" / "attribution.npy").exists()
    with pytest.raises(UserInputError, match="--target 7 is out of range"):
        explain_to_folder(ExplainSettings(model=ModelRequest(TINY), device="cpu", target=7, quiet=True,
                                          output_dir=str(tmp_path / "none")))  # fmt: skip
    with pytest.raises(UserInputError, match="cannot|not"):
        explain_to_folder(ExplainSettings(image_path=str(photos / "broken.png"), model=ModelRequest(TINY),
                                          device="cpu", quiet=True, output_dir=str(tmp_path / "none")))  # fmt: skip
    assert not (tmp_path / "none").exists()
    manifest = json.loads((tmp_path / "one" / "cat" / "manifest.json").read_text())
    assert manifest["options"]["variant"] == "gradlime" and manifest["options"]["seed"] == 0
    with open(tmp_path / "one" / "cat" / "superpixels.csv") as handle:
        assert {row["samples"] for row in csv.DictReader(handle)} == {"16"}
