"""One GradLIME composition: the command line, the registry and the figures give the same attribution."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnxai.cli import main
from cnnxai.explainers import explain
from cnnxai.figures.context import FigureContext
from cnnxai.images import load_image
from cnnxai.preprocess import to_model_frame
from cnnxai.zoo import MODELS, imagenet_class_names, load_model
from tests.helpers import small_photo

LIME = {"num_samples": 24, "segmenter": "slic"}


@pytest.mark.parametrize("smooth", [[], ["--aug-smooth"], ["--eigen-smooth", "--fusion", "superpixel"]])
def test_cli_registry_and_figure_give_one_gradlime(tmp_path, smooth, capsys):
    path = tmp_path / "cat.png"
    Image.fromarray(small_photo(120)).save(path)
    args = ["--image-path", str(path), "--output-dir", str(tmp_path / "out"), "--num-samples", "24",
            "--segmenter", "slic", "--seed", "3", "--device", "cpu", "--quiet", *smooth,
            "--backend", "torch"]  # fmt: skip  (the runtimes' agreement with torch: tests/lime_ext/test_backends.py)
    assert main("gradlime", args) == 0, capsys.readouterr().err
    from_cli = np.load(tmp_path / "out" / "cat" / "attribution.npy")

    model, _ = load_model("efficientnet_lite0")
    frame = to_model_frame(load_image(path))
    layers = list(MODELS["efficientnet_lite0"].layers)
    cam = {"aug_smooth": "--aug-smooth" in smooth, "eigen_smooth": "--eigen-smooth" in smooth,
           "fusion": "superpixel" if "superpixel" in smooth else "mean"}  # fmt: skip
    context = FigureContext(model, "efficientnet_lite0", frame, layers, {"camlime": {**LIME, **cam}},
                            imagenet_class_names(), seed=3)  # fmt: skip
    target = context.target
    from_registry = explain("gradlime", model, frame, target, seed=3, layers=layers, **LIME, **cam).map
    from_figure = context.ours("gradcam").attribution_map(target)

    np.testing.assert_array_equal(from_cli, from_registry)
    np.testing.assert_array_equal(from_cli, from_figure)
    assert np.abs(from_cli).max() > 0


def test_aug_smooth_changes_the_prior():
    model, _ = load_model("efficientnet_lite0")
    frame = to_model_frame(small_photo(120))
    layers = list(MODELS["efficientnet_lite0"].layers)
    plain = explain("gradlime", model, frame, 285, layers=layers, **LIME).extras["prior"]
    smooth = explain("gradlime", model, frame, 285, layers=layers, aug_smooth=True, **LIME).extras["prior"]
    assert not np.allclose(plain, smooth)
