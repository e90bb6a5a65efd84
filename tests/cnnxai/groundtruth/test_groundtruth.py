"""The synthetic localisation benchmark: data, model, metrics (by hand and against Quantus 0.6.0), the command."""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cnnxai.explainers import REGISTRY, explain
from cnnxai.groundtruth.benchmark import default_methods, example_indices, run_localisation
from cnnxai.groundtruth.cli import main
from cnnxai.images import dilate
from cnnxai.metrics import LOCALISATION_METRICS, localisation_scores, metric_settings
from cnnxai.metrics.localisation import expected_hits_in_top
from cnnxai.session import ImageSession
from cnnxai.synthetic.shapes import CLASSES, SyntheticSettings, draw_image, make_synthetic
from cnnxai.synthetic.shapes_model import CAM_LAYER, load_shapes_model
from tests.helpers import fast_options

METRICS = LOCALISATION_METRICS


def value(name: str, attribution: np.ndarray, mask: np.ndarray, **params) -> float:
    """Localisation metric ``name`` of a map against a mask, ``params`` over its defaults."""
    return localisation_scores(attribution, mask, metric_settings([name], {name: params}))[name].value


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("model_cache")


@pytest.fixture(scope="module")
def shapes_model(cache_dir):
    """The default model, trained once for this module (about 40 s on 2 CPU cores)."""
    return load_shapes_model(SyntheticSettings(), cache_dir=cache_dir)


# ---- data ------------------------------------------------------------------------------------------------


def test_images_are_deterministic_and_independent_of_the_set_size():
    settings = SyntheticSettings(seed=3)
    first = make_synthetic(settings, "test", 6)
    again = make_synthetic(settings, "test", 6)
    later = make_synthetic(settings, "test", 3, start=3)
    assert np.array_equal(first.images, again.images) and np.array_equal(first.masks, again.masks)
    assert np.array_equal(first.images[3:], later.images) and np.array_equal(first.labels[3:], later.labels)
    other_seed = make_synthetic(SyntheticSettings(seed=4), "test", 6)
    train = make_synthetic(settings, "train", 6)
    assert not np.array_equal(first.images, other_seed.images)
    assert not np.array_equal(first.images, train.images)


def test_masks_are_the_bright_object_and_classes_are_balanced():
    data = make_synthetic(SyntheticSettings(), "train", 400)
    areas = data.masks.sum(axis=(1, 2))
    assert areas.min() >= 60 and areas.max() <= 400  # one object of 14-20 px, never cut by the border
    counts = np.bincount(data.labels, minlength=len(CLASSES))
    assert counts.min() >= 70  # about 100 each
    for image, mask in zip(data.images[:50], data.masks[:50], strict=True):
        inside = image[mask].astype(float).max(axis=1).mean()
        assert inside > 150  # bright object; the texture stays below ~150 before noise
    image, mask, label = draw_image(SyntheticSettings(), "test", 0, label=2)
    assert label == 2 and mask.any()


# ---- model -----------------------------------------------------------------------------------------------


def test_model_reaches_95_percent_and_is_cached(shapes_model, cache_dir):
    model, info = shapes_model
    assert info["test_accuracy"] >= 0.95, info
    again, info_again = load_shapes_model(SyntheticSettings(), cache_dir=cache_dir)
    assert info_again["loaded_from_cache"] and info_again["test_accuracy"] == info["test_accuracy"]
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_an_unreadable_cache_file_is_trained_again(tmp_path):
    settings = SyntheticSettings(seed=5)
    _, info = load_shapes_model(settings, train_images=100, test_images=20, epochs=1, cache_dir=tmp_path)
    cache_file = tmp_path / info["cache_file"].split("/")[-1]
    cache_file.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="could not be read"):
        _, info = load_shapes_model(settings, train_images=100, test_images=20, epochs=1, cache_dir=tmp_path)
    assert not info["loaded_from_cache"]
    _, info = load_shapes_model(settings, train_images=100, test_images=20, epochs=1, cache_dir=tmp_path)
    assert info["loaded_from_cache"]


# ---- metrics by hand -------------------------------------------------------------------------------------


def _mask() -> np.ndarray:
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:4, 2:4] = True  # 4 pixels
    return mask


def test_pointing_game_unique_maximum_tolerance_and_ties():
    mask = _mask()
    a = np.zeros((10, 10))
    a[3, 3] = 1.0
    assert value("PointingGameExact", a, mask) == 1.0
    a = np.zeros((10, 10))
    a[3, 5] = 1.0  # two columns right of the mask (columns 2-3)
    assert value("PointingGameExact", a, mask) == 0.0
    assert value("PointingGame", a, mask, tolerance=1) == 0.0
    assert value("PointingGame", a, mask, tolerance=2) == 1.0
    a = np.zeros((10, 10))
    a[2, 2] = a[9, 9] = a[0, 9] = a[5, 5] = 1.0  # four tied maxima, one on the mask
    assert value("PointingGameExact", a, mask) == 0.25
    constant = np.ones((10, 10))  # a constant map scores the chance level
    assert value("PointingGameExact", constant, mask) == pytest.approx(4 / 100)
    assert dilate(mask, 1).sum() == 16


def test_mass_rank_topk_by_hand():
    mask = _mask()
    a = np.zeros((10, 10))
    a[2, 2], a[2, 3], a[0, 0] = 3.0, 1.0, 4.0
    assert value("RelevanceMassAccuracy", a, mask) == pytest.approx(4 / 8)
    assert np.isnan(value("RelevanceMassAccuracy", np.zeros((10, 10)), mask))
    # Top 4 = {4 (outside), 3 (inside), 1 (inside)} and one of the 97 tied zeros (2 of them inside).
    assert value("RelevanceRankAccuracy", a, mask) == pytest.approx((2 + 2 / 97) / 4)
    assert value("TopKIntersection", a, mask, k=2) == pytest.approx(1 / 2)
    assert value("TopKIntersection", a, mask, k=3) == pytest.approx(2 / 3)
    values = np.array([5.0, 2.0, 2.0, 2.0, 1.0])
    inside = np.array([False, True, False, False, True])
    assert expected_hits_in_top(values, inside, 2) == pytest.approx(1 / 3)
    assert expected_hits_in_top(values, inside, 5) == pytest.approx(2)


def test_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.integers(0, 4, (12, 12)).astype(float)  # many ties
        mask = rng.random((12, 12)) < 0.2
        assert value("AUC", a, mask) == pytest.approx(roc_auc_score(mask.ravel(), a.ravel()), abs=1e-12)
    assert value("AUC", np.ones((10, 10)), _mask()) == 0.5


def test_perfect_and_random_maps_bracket_every_metric():
    mask = np.zeros((32, 32), dtype=bool)
    mask[8:20, 10:22] = True  # 144 pixels
    settings = metric_settings(METRICS, {"PointingGame": {"tolerance": 0}})
    perfect = {name: r.value for name, r in localisation_scores(mask.astype(float), mask, settings).items()}
    assert all(v == pytest.approx(1.0) for v in perfect.values()), perfect
    noise = np.random.default_rng(1).random((32, 32))
    random_scores = {name: r.value for name, r in localisation_scores(noise, mask, settings).items()}
    share = mask.mean()
    assert random_scores["RelevanceMassAccuracy"] == pytest.approx(share, abs=0.05)
    assert random_scores["RelevanceRankAccuracy"] == pytest.approx(share, abs=0.1)
    assert random_scores["AUC"] == pytest.approx(0.5, abs=0.08)
    assert set(perfect) == set(METRICS)


# ---- parity with Quantus 0.6.0 on maps without ties ------------------------------------------------------


def test_equal_to_quantus_on_maps_without_ties():
    quantus = pytest.importorskip("quantus")
    rng = np.random.default_rng(2)
    n, size = 6, 16
    x = rng.random((n, 3, size, size)).astype(np.float32)
    y = np.zeros(n, dtype=np.int64)
    a = rng.random((n, 1, size, size)).astype(np.float32)  # non-negative, continuous: no ties
    a[0, 0, 5, 6] = 2.0  # a maximum on the mask in image 0
    s = np.zeros((n, 1, size, size), dtype=np.float32)
    for i in range(n):
        top, left = rng.integers(0, size - 6, 2)
        s[i, 0, top : top + 5, left : left + 6] = 1
    s[0, 0, 4:8, 4:8] = 1
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * size * size, 2))
    ours = {
        "PointingGame": lambda am, sm: value("PointingGameExact", am, sm),
        "RelevanceMassAccuracy": lambda am, sm: value("RelevanceMassAccuracy", am, sm),
        "RelevanceRankAccuracy": lambda am, sm: value("RelevanceRankAccuracy", am, sm),
        "TopKIntersection": lambda am, sm: value("TopKIntersection", am, sm, k=20),
        "AUC": lambda am, sm: value("AUC", am, sm),
    }
    theirs = {
        "PointingGame": quantus.PointingGame(disable_warnings=True),
        "RelevanceMassAccuracy": quantus.RelevanceMassAccuracy(disable_warnings=True),
        "RelevanceRankAccuracy": quantus.RelevanceRankAccuracy(disable_warnings=True),
        "TopKIntersection": quantus.TopKIntersection(k=20, disable_warnings=True),
        "AUC": quantus.AUC(disable_warnings=True),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, metric in theirs.items():
            expected = np.asarray(metric(model=model, x_batch=x, y_batch=y, a_batch=a, s_batch=s, device="cpu"),
                                  dtype=np.float64)  # fmt: skip
            got = np.array([ours[name](a[i, 0], s[i, 0].astype(bool)) for i in range(n)])
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7, err_msg=name)
        # Where they differ (documented): a map that is flat but for one pixel hits Quantus's pointing game
        # wherever the mask is (any tied maximum counts); here it scores the chance level.
        flat = np.full_like(a, 0.5)
        flat[:, 0, 0, 0] = 0.1
        hit = quantus.PointingGame(disable_warnings=True)(
            model=model, x_batch=x, y_batch=y, a_batch=flat, s_batch=s, device="cpu"
        )
    assert all(bool(h) for h in hit)
    area = s[0].sum()
    assert value("PointingGameExact", flat[0, 0], s[0, 0].astype(bool)) == pytest.approx(
        area / (size * size - 1)
    )


# ---- the benchmark and its command -----------------------------------------------------------------------


def test_gradcam_and_gradlime_point_at_the_evidence(shapes_model):
    """The issue's target, on 24 test images: Grad-CAM and GradLIME at least 90% in the pointing game
    (with the default tolerance); the random control far below."""
    model, _ = shapes_model
    data = make_synthetic(SyntheticSettings(), "test", 24)
    lime = {"num_samples": 400, "segmenter": "slic", "hide_color": 0}
    options = {"gradcam": {"layers": [CAM_LAYER]}, "gradlime": {"layers": [CAM_LAYER], **lime}}
    result = run_localisation(model, data, ["gradcam", "gradlime", "control_random"], options, progress=False)
    pointing = {
        m: np.mean([r["value"] for r in result.rows if r["method"] == m and r["metric"] == "PointingGame"])
        for m in ("gradcam", "gradlime", "control_random")
    }
    assert pointing["gradcam"] >= 0.9 and pointing["gradlime"] >= 0.9, pointing
    assert pointing["control_random"] <= 0.6, pointing
    assert np.mean(result.predicted == data.labels) >= 0.9


def test_a_failing_explainer_gives_nan_rows_with_the_reason(shapes_model):
    model, _ = shapes_model
    spec = REGISTRY["gradient"]

    def broken(context):
        raise RuntimeError("boom")

    data = make_synthetic(SyntheticSettings(), "test", 2)
    with REGISTRY.registered(replace(spec, fn=broken)), pytest.warns(UserWarning, match="gradient failed"):
        result = run_localisation(model, data, ["gradient", "saliency"], {}, progress=False)
    broken_rows = [r for r in result.rows if r["method"] == "gradient"]
    assert broken_rows and all(np.isnan(r["value"]) and "boom" in r["note"] for r in broken_rows)
    assert all(np.isfinite(r["value"]) for r in result.rows if r["method"] == "saliency")


def test_default_methods_all_run_on_the_shapes_model(shapes_model):
    model, _ = shapes_model
    image = make_synthetic(SyntheticSettings(), "test", 1).images[0]
    session = ImageSession(model, image)
    for method in default_methods():
        options = fast_options(method)
        if "layers" in options or method == "sise":
            options["layers"] = ["features.conv2", "features.conv4"] if method == "sise" else [CAM_LAYER]
        result = explain(method, model, image, 0, session=session, **options)
        assert result.map.shape == (64, 64) and np.all(np.isfinite(result.map)), method


def test_command_writes_the_table(cache_dir, tmp_path, capsys):
    out = tmp_path / "loc"
    methods = ["gradcam", "gradlime", "lime", "control_random"]
    code = main(["--num-images", "4", "--methods", ",".join(methods), "--num-samples", "100", "--examples", "4",
                 "--cache-dir", str(cache_dir), "--output-dir", str(out), "--quiet", "--dpi", "40"])  # fmt: skip
    assert code == 0
    assert {p.name for p in out.iterdir()} == {
        "scores.csv", "summary.csv", "summary.md", "summary.png", "comparison.csv", "comparison.png", "examples.png",
        "manifest.json", "report.html", "gallery",
    }  # fmt: skip
    with open(out / "scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * len(methods) * len(METRICS)
    with open(out / "summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    assert {(r["method"], r["metric"]) for r in summary} == {(m, k) for m in methods for k in METRICS}
    assert all(float(r["ci_low"]) <= float(r["ci_high"]) for r in summary if r["n"] != "1")
    with open(out / "comparison.csv") as handle:  # every method but lime against lime, on the 4 images
        comparison = list(csv.DictReader(handle))
    assert {(r["method"], r["metric"]) for r in comparison} == {
        (m, k) for m in methods if m != "lime" for k in METRICS
    }
    assert {r["baseline"] for r in comparison} == {"lime"} and {r["direction"] for r in comparison} == {
        "higher"
    }
    assert all(int(r["n_pairs"]) <= 4 for r in comparison)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["test_accuracy"] >= 0.95 and manifest["pointing_tolerance"] == 4
    assert "| gradlime |" in (out / "summary.md").read_text()
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--device", "cuda"], "CUDA"),
        (["--methods", "nope"], "unknown explainer"),
        (["--methods", "gradcam,normlime"], "NormLIME"),
        (["--num-images", "0"], "--num-images"),
        (["--top-k", "5000"], "--top-k"),
        (["--num-images", "2", "--examples", "3"], "--examples"),
        (["--segmenter", "watershed"], "--segmenter"),
        (["--attribution", "sideways"], "--attribution"),
        (["--seed", "x"], "--seed"),
        (["--methods", "gradcam,gradlime", "--baseline", "lime"], "--baseline lime: not among the methods"),
    ],
)
def test_bad_input_exits_2_without_output(arguments, message, tmp_path, capsys):
    if arguments[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    assert main([*arguments, "--output-dir", str(out), "--cache-dir", str(tmp_path / "c")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and message in error and "\n" not in error
    assert not out.exists()


def test_output_dir_that_is_a_file_exits_2(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["--output-dir", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "x"


def test_fewer_images_than_the_default_examples(cache_dir, tmp_path):
    out = tmp_path / "one"
    code = main(["--num-images", "1", "--methods", "control_random", "--cache-dir", str(cache_dir),
                 "--output-dir", str(out), "--quiet", "--dpi", "40"])  # fmt: skip
    assert code == 0 and (out / "examples.png").exists()
    assert json.loads((out / "manifest.json").read_text())["options"]["examples"] == 1


def test_examples_are_one_image_per_class_in_turn():
    labels = np.array([2, 2, 0, 2, 1, 0, 3, 1])
    assert example_indices(labels, 4) == [2, 4, 0, 6]
    assert example_indices(labels, 6) == [2, 4, 0, 6, 5, 7]
    assert example_indices(labels, 0) == []
