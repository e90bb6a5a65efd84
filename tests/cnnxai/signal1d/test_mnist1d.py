"""MNIST-1D: the data (deterministic, offline), the 1-D CNN (>= 85% test accuracy, cached), the 1-D explainers
(shapes, declared options and one-line errors naming close matches, values equal to those of the code before
the shared batch loop, Grad-CAM against pytorch_grad_cam, IG completeness, seeded determinism, no side effects)
and MNIST1D.py (figure + manifest, flags made from the declarations, --explainer-option, bad input = one line,
exit 2, nothing written)."""

from __future__ import annotations

import copy
import json
import random
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import cnnxai.signal1d.explainers as explainers_1d
from cnnxai.errors import UserInputError
from cnnxai.signal1d import (
    REGISTRY_1D,
    MNIST1DConvNet,
    deletion_curve,
    explain_1d,
    load_mnist1d_model,
    make_mnist1d,
    mnist1d_settings,
    window_prior,
    window_segments,
)
from cnnxai.signal1d.cli import main
from cnnxai.signal1d.data import generate_mnist1d
from cnnxai.signal1d.explainers import rise_masks_1d
from cnnxai.signal1d.report import choose_signals

LENGTH = 40
SMALL = ["--num-samples", "40", "--rise-masks", "32", "--ig-steps", "4", "--device", "cpu", "--quiet"]


def declared(name: str, **options) -> dict:
    """The ``options`` that method ``name`` declares (options are per method: rise's masks, ig's steps, ...)."""
    names = {option.name for option in REGISTRY_1D[name].options}
    return {key: value for key, value in options.items() if key in names}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, as MNIST1D.py runs: on shared cores more only slow this tiny network down."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def trained(cache_dir):
    """The CNN with the default settings, trained once for this file (a few seconds)."""
    return load_mnist1d_model(cache_dir=cache_dir)


@pytest.fixture(scope="module")
def data():
    return make_mnist1d()


@pytest.fixture
def model(trained):
    """A private copy: a test may change its mode or hooks without touching the others'."""
    return copy.deepcopy(trained[0]).eval()


@pytest.fixture
def example(data):
    return data.x_test[3], int(data.y_test[3])


# ------------------------------------------------------------------------------------------------ data


def test_data_are_deterministic_under_a_seed_and_leave_the_global_rngs_alone():
    np.random.seed(123)
    random.seed(123)
    numpy_state, python_state = np.random.get_state(), random.getstate()
    first = generate_mnist1d(mnist1d_settings(seed=3, num_samples=200))
    second = generate_mnist1d(mnist1d_settings(seed=3, num_samples=200))
    other = generate_mnist1d(mnist1d_settings(seed=4, num_samples=200))
    after = np.random.get_state()
    assert (
        after[0] == numpy_state[0]
        and np.array_equal(after[1], numpy_state[1])
        and after[2:] == numpy_state[2:]
    )
    assert random.getstate() == python_state
    for name in ("x", "y", "x_test", "y_test", "t"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert not np.array_equal(first.x, other.x)
    assert first.x.dtype == np.float32 and first.y.dtype == np.int64
    assert first.x.shape == (160, LENGTH) and first.x_test.shape == (40, LENGTH)
    assert first.templates.shape == (10, 12)


def test_data_are_mnist1d_own_make_dataset():
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = 200, 5
    reference = make_dataset(args)
    ours = generate_mnist1d(mnist1d_settings(seed=5, num_samples=200))
    np.testing.assert_array_equal(ours.x, reference["x"].astype(np.float32))
    np.testing.assert_array_equal(ours.y_test, reference["y_test"])


def test_default_data_set_and_copies(data):
    assert data.x.shape == (4000, LENGTH) and data.x_test.shape == (1000, LENGTH)
    assert sorted(np.unique(data.y_test)) == list(range(10))
    assert abs(float(np.concatenate([data.x, data.x_test]).mean())) < 1e-4  # standardised: 0 = the mean
    data.x[0] = 99.0  # a caller's copy: the next call is unchanged
    assert make_mnist1d().x[0, 0] != 99.0


def test_unknown_data_setting_is_an_error():
    with pytest.raises(ValueError, match="unknown MNIST-1D setting"):
        mnist1d_settings(shufle_seq=True)


# ------------------------------------------------------------------------------------------------ model


def test_model_reaches_85_percent_and_reports_its_training(trained):
    _, info = trained
    assert info["test_accuracy"] >= 0.85, info
    assert info["train_accuracy"] >= info["test_accuracy"] - 0.02
    assert info["train_seconds"] > 0 and info["loaded_from_cache"] is False
    assert info["settings"]["epochs"] == 20


def test_model_cache_returns_the_same_weights(trained, cache_dir):
    model, info = trained
    again, info_again = load_mnist1d_model(cache_dir=cache_dir)
    assert info_again["loaded_from_cache"] is True and info_again["cache_file"] == info["cache_file"]
    assert info_again["test_accuracy"] == info["test_accuracy"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name
    assert not again.training


def test_model_takes_both_signal_layouts(model, data):
    x = torch.from_numpy(data.x_test[:5])
    assert model(x).shape == (5, 10)
    assert torch.equal(model(x), model(x[:, None]))


# ------------------------------------------------------------------------------------------------ explainers


@pytest.mark.parametrize("name", list(REGISTRY_1D))
def test_every_explainer_returns_a_float32_map_of_the_signal_length(name, model, example):
    signal, target = example
    options = declared(name, num_samples=200, masks=200, steps=8)
    result = explain_1d(name, model, signal, target, seed=0, **options)
    assert result.dtype == np.float32 and result.shape == (LENGTH,)
    assert np.all(np.isfinite(result)) and np.abs(result).max() > 0
    if not REGISTRY_1D[name].signed:
        assert result.min() >= 0


def test_explainers_restore_modes_and_leave_no_hooks(model, example):
    signal, target = example
    model.train()
    model.relu2.eval()  # mixed modes come back as they were
    for name in REGISTRY_1D:
        explain_1d(name, model, signal, target, **declared(name, num_samples=50, masks=50, steps=4))
    assert model.training and model.conv1.training and not model.relu2.training
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks and not module._backward_hooks
    assert all(p.grad is None for p in model.parameters())


def test_gradcam_equals_pytorch_grad_cam_on_the_same_net_written_in_2d(model, data):
    """The 1-D Grad-CAM against pytorch_grad_cam's GradCAM on Conv2d layers of kernel (1,k) over a (1,1,1,L)
    input, with the same weights: after its min-max normalisation they agree to float32 precision."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    class Net2D(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for i, kernel in ((1, 5), (2, 3), (3, 3)):
                conv = nn.Conv2d(1 if i == 1 else 25, 25, (1, kernel), padding="same")
                source = getattr(model, f"conv{i}")
                with torch.no_grad():
                    conv.weight.copy_(source.weight[:, :, None])
                    conv.bias.copy_(source.bias)
                setattr(self, f"conv{i}", conv)
                setattr(self, f"relu{i}", nn.ReLU())
            self.fc = copy.deepcopy(model.fc)

        def forward(self, x):
            for i in (1, 2, 3):
                x = getattr(self, f"relu{i}")(getattr(self, f"conv{i}")(x))
            return self.fc(x.flatten(1))

    net = Net2D().eval()
    for index in (0, 7):
        signal, target = data.x_test[index], int(data.y_test[index])
        x2d = torch.from_numpy(signal)[None, None, None]
        torch.testing.assert_close(net(x2d), model(torch.from_numpy(signal)[None]))
        for layer in ("relu3", "conv3", "relu1"):
            ours = explain_1d("gradcam", model, signal, target, layer=layer)
            with GradCAM(net, [getattr(net, layer)]) as cam:
                theirs = cam(x2d, [ClassifierOutputTarget(target)])[0, 0]
            normalised = (ours - ours.min()) / (ours.max() - ours.min() + 1e-7)
            np.testing.assert_allclose(normalised, theirs, atol=1e-6)


def test_gradcam_is_unnormalised_relu_of_weighted_activations(model, example):
    """By hand with autograd, on the raw scale: ReLU(sum_k mean_t(dY/dA_k) A_k)."""
    signal, target = example
    x = torch.from_numpy(signal)[None, None]
    a3 = model.relu3(model.conv3(model.relu2(model.conv2(model.relu1(model.conv1(x))))))
    logit = model.fc(a3.flatten(1))[0, target]
    (g,) = torch.autograd.grad(logit, a3)
    expected = F.relu((g.mean(2, keepdim=True) * a3).sum(1))[0].detach().numpy()
    np.testing.assert_allclose(explain_1d("gradcam", model, signal, target), expected, rtol=1e-5, atol=1e-6)


def test_ig_is_complete(model, data):
    """sum_t IG(t) = logit_c(x) - logit_c(0) up to the integral's quadrature error."""
    for index in (0, 3, 9):
        signal, target = data.x_test[index], int(data.y_test[index])
        with torch.no_grad():
            gap = float((model(torch.from_numpy(signal)[None]) - model(torch.zeros(1, LENGTH)))[0, target])
        assert abs(explain_1d("ig", model, signal, target, steps=200).sum() - gap) <= 0.02 * abs(gap)
        assert abs(explain_1d("ig", model, signal, target).sum() - gap) <= 0.05 * abs(gap)


@pytest.mark.parametrize("name", [name for name, spec in REGISTRY_1D.items() if spec.random])
def test_random_explainers_are_seeded(name, model, example):
    signal, target = example
    options = declared(name, num_samples=150, masks=150)
    first = explain_1d(name, model, signal, target, seed=5, **options)
    np.testing.assert_array_equal(first, explain_1d(name, model, signal, target, seed=5, **options))
    assert not np.array_equal(first, explain_1d(name, model, signal, target, seed=6, **options))


def test_lime_and_gradlime_share_the_neighbourhood(model, example):
    signal, target = example
    shared: dict = {}
    explain_1d("lime", model, signal, target, seed=1, shared=shared, num_samples=80)
    explain_1d("gradlime", model, signal, target, seed=1, shared=shared, num_samples=80)
    assert len(shared) == 1
    (neighbourhood,) = shared.values()
    assert neighbourhood.masks.shape == (80, 10) and np.all(neighbourhood.masks[0] == 1)


def test_gradlime_with_a_uniform_prior_is_lime(model, example, monkeypatch):
    signal, target = example
    monkeypatch.setattr(explainers_1d, "gradcam_map", lambda context: np.full(LENGTH, 0.3, np.float32))
    lime = explain_1d("lime", model, signal, target, seed=2, num_samples=120)
    np.testing.assert_allclose(explain_1d("gradlime", model, signal, target, seed=2, num_samples=120), lime)


def test_lime_hides_windows_with_zero_or_their_mean(model, example):
    signal, target = example
    zero = explain_1d("lime", model, signal, target, seed=0, num_samples=100, window=8)
    mean = explain_1d("lime", model, signal, target, seed=0, num_samples=100, window=8, hide="mean")
    assert len(np.unique(zero)) <= 5 and not np.array_equal(zero, mean)  # 5 windows: constant within each
    segments = window_segments(LENGTH, 8)
    assert all(len(np.unique(zero[segments == j])) == 1 for j in range(5))


def test_window_prior_is_the_linear_upsampled_cam_per_window_over_its_max():
    """The image prior of cam_ext.segment_prior on one row, computed independently with np.interp (half-pixel
    centres)."""
    rng = np.random.default_rng(0)
    cam = rng.random(10).astype(np.float32)
    segments = window_segments(LENGTH, 4)
    source = np.clip((np.arange(LENGTH) + 0.5) * 10 / LENGTH - 0.5, 0, 9)
    up = np.interp(source, np.arange(10), cam)
    up = (up - up.min()) / (up.max() - up.min() + 1e-7)
    means = np.array([up[segments == j].mean() for j in range(10)])
    prior = window_prior(cam, segments)
    np.testing.assert_allclose(prior, means / means.max(), rtol=1e-5)
    assert prior.max() == 1.0 and prior.min() > 0  # a/max(a): no window is zeroed (a min-max would)
    np.testing.assert_array_equal(window_prior(np.zeros(LENGTH), segments), np.ones(10))


def test_window_segments_and_bad_options(model, example):
    np.testing.assert_array_equal(window_segments(LENGTH, 4), np.repeat(np.arange(10), 4))
    assert window_segments(LENGTH, 3).max() == 13  # a shorter last window when it does not divide
    signal, target = example
    with pytest.raises(ValueError, match="window"):
        explain_1d("lime", model, signal, target, window=41)
    with pytest.raises(ValueError, match="has no option 'windw'"):
        explain_1d("lime", model, signal, target, windw=4)
    with pytest.raises(ValueError, match="unknown 1-D explainer"):
        explain_1d("shap", model, signal, target)
    with pytest.raises(ValueError, match=r"shape \(L,\)"):
        explain_1d("ig", model, signal[None], target)


@pytest.mark.parametrize(
    "call, close",
    [
        (dict(name="lime", windw=4), "window"),
        (dict(name="rise", cell=4), "cells"),
        (dict(name="ig", ig_steps=4), "steps"),  # the flag's name is not the option's
        (dict(name="rsie"), "rise"),
        (dict(name="grad_cam"), "gradcam"),
    ],
)
def test_unknown_option_or_explainer_is_one_line_naming_the_close_match(call, close, model, example):
    signal, target = example
    options = dict(call)
    name = options.pop("name")
    with pytest.raises(UserInputError) as raised:
        explain_1d(name, model, signal, target, **options)
    message = str(raised.value)
    assert "\n" not in message and f"close matches: {close}" in message, message


def test_options_are_declared_per_method_with_their_defaults():
    declared_options = {
        name: {option.name: option.default for option in spec.options} for name, spec in REGISTRY_1D.items()
    }
    lime = {"num_samples": 1000, "window": 4, "hide": "zero", "kernel_width": 0.25}
    assert declared_options == {
        "lime": lime,
        "gradlime": {**lime, "layer": "relu3"},
        "gradcam": {"layer": "relu3"},
        "ig": {"steps": 50},
        "input_x_gradient": {},
        "saliency": {},
        "rise": {"masks": 2000, "cells": 8, "p1": 0.5},
    }
    with pytest.raises(UserInputError, match=r"rise\.p1=1\.5: must be in \(0, 1\]"):
        REGISTRY_1D.options("rise", {"p1": 1.5})


@pytest.fixture
def peaky_model():
    """A fixed untrained CNN (seed 0, last layer scaled up so its probabilities are far from uniform): the same
    weights on every machine, unlike a trained one."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = MNIST1DConvNet().eval()
    with torch.no_grad():
        net.fc.weight.mul_(30.0)
    return net


def original_softmax(model, signals, batch_size):
    """The batch loop the 1-D code had before it used lime_ext.forward_batches."""
    with torch.no_grad():
        return torch.cat(
            [
                F.softmax(model(signals[i : i + batch_size]).float(), dim=1)
                for i in range(0, len(signals), batch_size)
            ]
        )


@pytest.mark.parametrize("batch_size", [1024, 7])
def test_lime_rise_and_deletion_values_are_those_of_the_original_batch_loop(batch_size, peaky_model, data):
    """The maps of the code before the registry and the shared batch loop (computed then, on this fixed model),
    and the neighbourhood, RISE's estimator and the deletion curve equal to the original loop to the bit."""
    model = peaky_model
    signal, target = data.x_test[3], int(data.y_test[3])
    shared: dict = {}
    lime = explain_1d("lime", model, signal, target, 1, shared, batch_size, num_samples=300)
    gradlime = explain_1d("gradlime", model, signal, target, 1, shared, batch_size, num_samples=300)
    rise = explain_1d("rise", model, signal, target, seed=1, batch_size=batch_size, masks=500)
    curve, auc = deletion_curve(model, signal, target, lime, batch_size)
    before = {
        "lime": [0.0080579128, 0.010439889, -0.010985337, 0.0063867276, 0.029159611, 0.020275155, 0.0010923147,
                 -0.015133829, -0.0098193381, -0.0042411489],
        "gradlime": [0.0081715034, 0.0099377446, -0.0099059241, 0.0044065174, 0.029382803, 0.019472703,
                     0.001192887, -0.014183026, -0.0086290436, -0.0042073797],
        "rise": [0.15195666, 0.16560672, 0.16228785, 0.14113384, 0.15270641],
    }  # fmt: skip
    # The fits' last bits follow the BLAS of the installed numpy/scipy: a weight near 0 may move by 1e-8, so the
    # tolerance is relative to the map's scale (about 1e-2), not to each weight.
    np.testing.assert_allclose(lime[::4], before["lime"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gradlime[::4], before["gradlime"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rise[[0, 10, 20, 30, 39]], before["rise"], rtol=1e-5)
    assert auc == pytest.approx(0.12364041861146688, rel=1e-5)

    (neighbourhood,) = shared.values()
    keep = torch.from_numpy(neighbourhood.masks[:, window_segments(LENGTH, 4)].astype(np.float32))
    x = torch.from_numpy(signal)[None]
    expected = original_softmax(model, keep * x, batch_size).numpy()  # hidden windows show 0
    np.testing.assert_array_equal(neighbourhood.predictions, expected)

    rng = np.random.default_rng(np.random.SeedSequence([1, 7, zlib.crc32(signal.tobytes())]))
    masks = torch.from_numpy(rise_masks_1d(500, LENGTH, 8, 0.5, rng))
    probabilities = original_softmax(model, x * masks, batch_size)[:, target]
    np.testing.assert_array_equal(rise, ((probabilities[:, None] * masks).sum(dim=0) / (500 * 0.5)).numpy())

    order = np.argsort(-lime.astype(np.float64), kind="stable")
    deleted = np.ones((LENGTH + 1, LENGTH), dtype=np.float32)
    for step in range(1, LENGTH + 1):
        deleted[step:, order[step - 1]] = 0.0
    original = original_softmax(model, torch.from_numpy(deleted * signal[None]), batch_size)[:, target]
    np.testing.assert_array_equal(curve, original.numpy().astype(np.float64))


def test_rise_masks_and_a_keep_everything_mask(model, example):
    masks = rise_masks_1d(64, LENGTH, 8, 0.5, np.random.default_rng(0))
    assert masks.shape == (64, LENGTH) and masks.dtype == np.float32
    assert masks.min() >= 0 and masks.max() <= 1 and 0.3 < masks.mean() < 0.7
    np.testing.assert_array_equal(masks, rise_masks_1d(64, LENGTH, 8, 0.5, np.random.default_rng(0)))
    # p1 = 1 keeps everything: the saliency is P(c | x) at every position.
    signal, target = example
    with torch.no_grad():
        probability = float(torch.softmax(model(torch.from_numpy(signal)[None]), 1)[0, target])
    np.testing.assert_allclose(
        explain_1d("rise", model, signal, target, masks=10, p1=1.0), probability, rtol=1e-5
    )


def test_deletion_curve_by_hand(model, example):
    signal, target = example
    attribution = np.zeros(LENGTH)
    attribution[[7, 2, 30]] = [
        3.0,
        2.0,
        1.0,
    ]  # deleted first: 7, then 2, then 30, then 0,1,3,... (ties by position)
    curve, auc = deletion_curve(model, signal, target, attribution)
    assert curve.shape == (LENGTH + 1,)

    def probability(x):
        with torch.no_grad():
            return float(torch.softmax(model(torch.from_numpy(x.astype(np.float32))[None]), 1)[0, target])

    expected = [probability(signal)]
    current = signal.copy()
    for position in [7, 2, 30, 0, 1]:
        current[position] = 0.0
        expected.append(probability(current))
    np.testing.assert_allclose(curve[:6], expected, rtol=1e-5)
    np.testing.assert_allclose(curve[-1], probability(np.zeros(LENGTH)), rtol=1e-5)
    assert auc == pytest.approx((curve.sum() - curve[0] / 2 - curve[-1] / 2) / LENGTH)


# ------------------------------------------------------------------------------------------------ MNIST1D.py


def test_choose_signals_one_correct_signal_per_class_from_the_seed(data):
    predicted = data.y_test.copy()
    predicted[::2] = (predicted[::2] + 1) % 10  # every other signal 'misclassified'
    chosen = choose_signals(predicted, data.y_test, 0)
    assert [int(data.y_test[i]) for i in chosen] == list(range(10))
    assert all(i % 2 == 1 for i in chosen)
    assert chosen == choose_signals(predicted, data.y_test, 0) and chosen != choose_signals(
        predicted, data.y_test, 1
    )


def test_mnist1d_command_writes_the_figure_and_manifest(cache_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["--cache-dir", str(cache_dir), "--output-dir", str(out), "--dpi", "60", *SMALL])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(p.name for p in out.iterdir()) == ["mnist1d_explanations.json", "mnist1d_explanations.png"]
    width, height = Image.open(out / "mnist1d_explanations.png").size
    assert width > 300 and height > 300
    manifest = json.loads((out / "mnist1d_explanations.json").read_text())
    assert manifest["model"]["loaded_from_cache"] is True and manifest["model"]["test_accuracy"] >= 0.85
    assert [s["class"] for s in manifest["signals"]] == list(range(10))
    assert all(s["probability"] > 0.1 for s in manifest["signals"])
    assert list(manifest["methods"]) == list(REGISTRY_1D)
    for entry in manifest["methods"].values():
        assert entry["seconds_total"] >= 0 and len(entry["deletion_auc"]) == 10
        assert 0 <= entry["deletion_auc_mean"] <= 1
    assert manifest["explainer_options"]["lime"]["num_samples"] == 40
    assert {"torch", "captum", "mnist1d"} <= set(manifest["versions"])
    assert "mnist1d_explanations.png" in captured.out


def small_run(cache_dir, out, *args: str) -> dict:
    """MNIST1D.py with the small settings into ``out``, which must succeed; its manifest."""
    assert main(["--cache-dir", str(cache_dir), "--output-dir", str(out), "--dpi", "50", *SMALL, *args]) == 0
    return json.loads((out / "mnist1d_explanations.json").read_text())


def test_mnist1d_command_is_deterministic_counts_its_panels_and_writes_a_pdf(
    cache_dir, tmp_path, monkeypatch, capsys
):
    import cnnxai.figures.signal1d as report

    drawn = []
    original = report.draw_mnist1d_figure

    def keep(*args, **kwargs):
        fig = original(*args, **kwargs)
        drawn.append(sum(axis.get_label() == "panel" for axis in fig.axes))
        return fig

    monkeypatch.setattr(report, "draw_mnist1d_figure", keep)
    manifests = []
    for name in ("a", "b"):
        out = tmp_path / name
        manifests.append(small_run(cache_dir, out, "--methods", "lime,rise,gradcam", "--pdf"))
        assert (out / "mnist1d_explanations.pdf").stat().st_size > 0
    assert drawn == [30, 30]
    assert manifests[0]["files"] == ["mnist1d_explanations.png", "mnist1d_explanations.pdf"]
    assert manifests[0]["signals"] == manifests[1]["signals"]
    assert [m["methods"]["rise"]["deletion_auc"] for m in manifests] == [
        manifests[0]["methods"]["rise"]["deletion_auc"]
    ] * 2
    capsys.readouterr()


def test_mnist1d_list_names_every_method_and_its_options(capsys):
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in REGISTRY_1D)
    for name, spec in REGISTRY_1D.items():
        for option in spec.options:
            assert f"{name}.{option.name} = {option.default!r}: {option.help}" in listed


def test_mnist1d_flags_are_made_from_the_declarations(capsys):
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in [("--num-samples", 1000), ("--window", 4), ("--hide", "zero"), ("--cam-layer", "relu3"),
                          ("--rise-masks", 2000), ("--rise-p1", 0.5), ("--ig-steps", 50)]:  # fmt: skip
        assert f"{flag} " in text and f"(default: {default})" in text, flag


def test_mnist1d_explainer_option_reaches_any_declared_option(cache_dir, tmp_path, capsys):
    """--explainer-option rise.cells=4 changes RISE's masks: its options in the manifest and its deletion AUC."""
    default = small_run(cache_dir, tmp_path / "default", "--methods", "rise,lime")
    changed = small_run(
        cache_dir, tmp_path / "cells", "--methods", "rise,lime", "--explainer-option", "rise.cells=4"
    )
    assert default["explainer_options"]["rise"] == {"masks": 32, "cells": 8, "p1": 0.5}
    assert changed["explainer_options"]["rise"] == {"masks": 32, "cells": 4, "p1": 0.5}
    assert changed["explainer_options"]["lime"] == default["explainer_options"]["lime"]
    assert changed["methods"]["rise"]["deletion_auc"] != default["methods"]["rise"]["deletion_auc"]
    assert changed["methods"]["lime"]["deletion_auc"] == default["methods"]["lime"]["deletion_auc"]
    assert changed["schema_version"] >= 2 and changed["tool"] == "MNIST1D.py"


BAD = {
    "unknown method": ["--methods", "lime,magic"],
    "no method": ["--methods", ","],
    "window not dividing": ["--window", "3"],
    "window too long": ["--window", "80"],
    "window zero": ["--window", "0"],
    "one sample": ["--num-samples", "1"],
    "rise p1": ["--rise-p1", "1.5"],
    "epochs": ["--epochs", "0"],
    "ig steps": ["--ig-steps", "x"],
    "unknown device": ["--device", "tpu"],
    "unknown layer": ["--cam-layer", "fc"],
    "explainer option: unknown key": ["--explainer-option", "rise.cell=4"],
    "explainer option: unknown method": ["--explainer-option", "rsie.cells=4"],
    "explainer option: method not in the run": ["--methods", "lime", "--explainer-option", "rise.cells=4"],
    "explainer option: bad value": ["--explainer-option", "rise.p1=2"],
    "explainer option: window not dividing": ["--explainer-option", "gradlime.window=3"],
    "explainer option: no equals sign": ["--explainer-option", "rise.cells"],
}
if not torch.cuda.is_available():
    BAD["cuda without cuda"] = ["--device", "cuda"]


@pytest.mark.parametrize("args", list(BAD.values()), ids=list(BAD))
def test_bad_input_is_one_line_exit_2_and_no_output(args, cache_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([*args, "--cache-dir", str(cache_dir), "--output-dir", str(out), "--quiet"])
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert not out.exists()


def test_explainer_option_with_an_unknown_key_names_the_close_match(cache_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["--explainer-option", "rise.cell=4", "--cache-dir", str(cache_dir), "--output-dir", str(out)]
    )
    stderr = capsys.readouterr().err
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert "'cell'" in stderr and "close matches: cells" in stderr, stderr
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_maps_equal_the_cpu_maps(model, example):
    signal, target = example
    on_gpu = copy.deepcopy(model).cuda()
    for name in REGISTRY_1D:
        options = declared(name, num_samples=200, masks=200)
        cpu = explain_1d(name, model, signal, target, seed=0, **options)
        gpu = explain_1d(name, on_gpu, signal, target, seed=0, **options)
        assert gpu.dtype == np.float32 and gpu.shape == (LENGTH,)
        np.testing.assert_allclose(gpu, cpu, atol=2e-3 * np.abs(cpu).max())  # TF32 convolutions on the GPU
