"""The explainer registry: analytic checks (IG completeness, GNL, RISE, KernelSHAP) and every method on a tiny model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY, explain
from cnnxai.explainers.guided import GuidedReLU, guided_nonlinearities
from cnnxai.explainers.kernel_shap import shap_values, shapley_coalitions
from cnnxai.session import ImageSession
from lime_ext import LimeSettings, TorchClassifier
from tests.helpers import ROOT, fast_options, make_tiny_cnn, small_photo


def relu_mlp_cnn() -> nn.Module:
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )  # fmt: skip
    with torch.no_grad():
        model[7].weight.mul_(20)  # logit gaps well above float noise
    return model.eval()


def smooth_cnn() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    ).eval()


def test_integrated_gradients_are_complete():
    model, image = relu_mlp_cnn(), small_photo(24)
    x = TorchClassifier(model).prepare(torch.from_numpy(image).permute(2, 0, 1).float() / 255)[None]
    with torch.no_grad():
        gaps = model(x)[0] - model(torch.zeros_like(x))[0]
    target = int(gaps.abs().argmax())
    gap = float(gaps[target])
    assert abs(gap) > 0.01
    result = explain("ig", model, image, target=target, steps=300)
    assert float(result.map.sum()) == pytest.approx(gap, rel=1e-2)  # sum of attributions = f(x) - f(baseline)
    assert result.extras["per_channel"].shape == (3, 24, 24)


def test_guided_ig_equals_ig_without_relu_or_maxpool():
    model, image = smooth_cnn(), small_photo(24)
    guided = explain("guided_ig_gnl", model, image, target=2, steps=16)
    plain = explain("ig", model, image, target=2, steps=16)
    np.testing.assert_allclose(guided.map, plain.map, rtol=1e-5, atol=1e-7)


def test_guided_ig_differs_with_relu_and_leaves_the_model_exactly_as_it_was():
    model, image = relu_mlp_cnn(), small_photo(24)
    model[2].train()  # a mixed mode that must survive
    modules_before = [(name, id(module), module.training) for name, module in model.named_modules()]
    state_before = {k: v.clone() for k, v in model.state_dict().items()}
    guided = explain("guided_ig_gnl", model, image, target=0, steps=16)
    plain = explain("ig", model, image, target=0, steps=16)
    assert not np.allclose(guided.map, plain.map, atol=1e-6)
    assert [(name, id(module), module.training) for name, module in model.named_modules()] == modules_before
    assert all(torch.equal(state_before[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, GuidedReLU) for m in model.modules())


def test_guided_swap_is_undone_when_the_model_raises():
    model = relu_mlp_cnn()
    with pytest.raises(RuntimeError, match="boom"), guided_nonlinearities(model) as swapped:
        assert swapped == 3 and isinstance(model[1], GuidedReLU)
        raise RuntimeError("boom")
    assert type(model[1]) is nn.ReLU and type(model[2]) is nn.MaxPool2d


def test_guided_relu_backward_passes_only_positive_gradients():
    z = torch.tensor([-1.0, 2.0, 3.0, 7.0], requires_grad=True)
    (GuidedReLU(6.0)(z) * torch.tensor([5.0, -4.0, 3.0, 2.0])).sum().backward()
    assert z.grad.tolist() == [0.0, 0.0, 3.0, 0.0]  # off, negative gradient, passes, above 6


def test_functional_relu_model_is_refused():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 2, 3), nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(F.relu(self.conv(x)).mean(dim=(2, 3)))

    for method in ("guided_ig_gnl", "deconvolution"):
        with pytest.raises(UserInputError, match="calls relu"):
            explain(method, Functional().eval(), small_photo(16), target=0, **fast_options(method))


def test_deconvolution_equals_captums_on_relu_and_applies_its_rule_to_relu6():
    from captum.attr import Deconvolution

    model, image = relu_mlp_cnn(), small_photo(24)
    ours = explain("deconvolution", model, image, target=1)
    x = TorchClassifier(model).prepare(torch.from_numpy(image).permute(2, 0, 1).float() / 255)[None]
    theirs = Deconvolution(model).attribute(x.requires_grad_(True), target=1)[0].sum(0).detach().numpy()
    np.testing.assert_allclose(ours.map, theirs, rtol=1e-5, atol=1e-7)
    assert not np.allclose(ours.map, explain("gradient", model, image, target=1).map)

    six = relu_mlp_cnn()
    six[1], six[4] = nn.ReLU6(), nn.ReLU6()  # what captum's Deconvolution leaves alone
    modules_before = [id(m) for m in six.modules()]
    deconv, gradient = (
        explain("deconvolution", six, image, target=1).map,
        explain("gradient", six, image, target=1).map,
    )
    assert not np.allclose(deconv, gradient)
    captum_on_relu6 = (
        Deconvolution(six).attribute(x.clone().requires_grad_(True), target=1)[0].sum(0).detach().numpy()
    )
    np.testing.assert_allclose(
        captum_on_relu6, gradient, rtol=1e-5, atol=1e-7
    )  # the bug this explainer avoids
    assert [id(m) for m in six.modules()] == modules_before


def test_rise_peaks_in_the_quadrant_the_model_looks_at():
    class TopLeft(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(10.0))

        def forward(self, x):
            half = x.shape[-1] // 2
            evidence = self.scale * x[:, :, :half, :half].mean(dim=(1, 2, 3))
            return torch.stack([evidence, torch.zeros_like(evidence)], dim=1)

    image = np.full((32, 32, 3), 255, dtype=np.uint8)  # white: positive after ImageNet normalisation
    saliency = explain("rise", TopLeft().eval(), image, target=0, masks=1000, seed=1).map
    quadrants = [
        saliency[:16, :16].mean(),
        saliency[:16, 16:].mean(),
        saliency[16:, :16].mean(),
        saliency[16:, 16:].mean(),
    ]
    assert int(np.argmax(quadrants)) == 0 and quadrants[0] > 1.05 * max(quadrants[1:])


def test_kernel_shap_recovers_a_linear_game_and_keeps_efficiency():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=9)
    z = shapley_coalitions(300, 9, rng)
    assert z[0].all() and not z[1].any() and 0 < z[2:].sum(axis=1).min() and z[2:].sum(axis=1).max() < 9
    values = z @ weights + 0.5
    np.testing.assert_allclose(shap_values(z, values), weights, atol=1e-9)
    phi = explain(
        "kernel_shap", make_tiny_cnn(), small_photo(32), target=1, num_samples=60, segmenter="slic"
    ).extras["shap_values"]
    classifier = TorchClassifier(make_tiny_cnn())
    with torch.no_grad():
        full = classifier(torch.from_numpy(small_photo(32)).permute(2, 0, 1).float()[None] / 255)[0, 1]
        empty = classifier(torch.zeros(1, 3, 32, 32))[0, 1]
    assert phi.sum() == pytest.approx(float(full - empty), abs=1e-5)


def test_lime_family_shares_one_perturbation_set():
    model, image = make_tiny_cnn(), small_photo(32)
    session = ImageSession(model, image)
    lime = explain("lime", model, image, 1, session=session, **fast_options("lime"))
    gradlime = explain("gradlime", model, image, 1, session=session, **fast_options("gradlime"))
    samplers = list(session.samplers.values())
    assert len(samplers) == 1 and samplers[0].predicted == fast_options("lime")["num_samples"]
    ours = gradlime.extras["explanation"].labels[1]
    np.testing.assert_allclose(ours.attributions, ours.prior * ours.weights)
    assert lime.extras["explanation"].segments is gradlime.extras["explanation"].segments

    # the earlier form: a dict kept for the image holds its session, made by the first call
    shared: dict = {}
    again = explain("lime", model, image, 1, shared=shared, **fast_options("lime"))
    (held,) = shared.values()
    assert isinstance(held, ImageSession) and len(held.samplers) == 1
    np.testing.assert_array_equal(again.map, lime.map)
    with pytest.raises(ValueError, match="another model or image"):
        explain("lime", make_tiny_cnn(), image, 1, session=session, **fast_options("lime"))


def test_a_session_predicts_once_and_restores_the_mode():
    model, image = make_tiny_cnn().train(), small_photo(32)
    session = ImageSession(model, image)
    probabilities = session.probabilities
    assert model.training and probabilities.ndim == 1 and session.predicted == int(np.argmax(probabilities))
    with torch.no_grad():
        expected = TorchClassifier(model.eval())(torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255)[0]
    np.testing.assert_allclose(probabilities, expected.numpy(), rtol=1e-6)
    assert session.probabilities is probabilities  # one forward


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_explainer_returns_a_finite_map_of_the_input_shape(name):
    result = explain(name, make_tiny_cnn(), small_photo(32), target=2, seed=0, **fast_options(name))
    assert result.map.shape == (32, 32) and result.map.dtype == np.float32
    assert np.isfinite(result.map).all()


@pytest.mark.parametrize("name", [n for n, spec in REGISTRY.items() if spec.random])
def test_random_explainers_are_deterministic_under_a_seed(name):
    runs = [
        explain(name, make_tiny_cnn(), small_photo(32), target=2, seed=seed, **fast_options(name)).map
        for seed in (4, 4, 5)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_list_command_names_every_explainer():
    listing = subprocess.run(
        [sys.executable, "-m", "cnnxai.explainers", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = [line.split()[0] for line in listing.strip().splitlines() if not line.startswith(" ")]
    assert names == list(REGISTRY)
    assert "    rise.masks = 4000: random masks N" in listing


class RedDetector(nn.Module):
    """Class 0 when the image has strongly red pixels; its first convolution (1x1, identity) passes RGB on."""

    def __init__(self):
        super().__init__()
        self.colour = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.colour.weight.copy_(torch.eye(3)[:, :, None, None])
            self.colour.bias.zero_()

    def forward(self, x):
        rgb = self.colour(x)
        redness = torch.relu(rgb[:, 0] - rgb[:, 1] - 1.0).mean(dim=(1, 2))
        return torch.stack([40.0 * redness, torch.ones_like(redness)], dim=1)


def colour_blocks(rng: np.random.Generator, red: bool) -> np.ndarray:
    """48x48 image of 16x16 blocks in grey / blue / green, with one red block when ``red``."""
    palette = np.array([[128, 128, 128], [30, 60, 200], [40, 180, 60]], dtype=np.uint8)
    blocks = palette[rng.integers(0, 3, size=(3, 3))]
    if red:
        blocks[rng.integers(0, 3), rng.integers(0, 3)] = [220, 20, 20]
    return np.kron(blocks, np.ones((16, 16, 1), dtype=np.uint8))


def test_normlime_global_weights_single_out_the_deciding_cluster(tmp_path):
    from cnnxai.explainers.normlime import first_conv_features, fit_normlime, region_features

    rng = np.random.default_rng(0)
    images = [colour_blocks(rng, red=i % 2 == 0) for i in range(12)]
    model = RedDetector().eval()
    fitted = fit_normlime(model, images, LimeSettings(120, "slic"), num_clusters=4, seed=0)
    red = np.full((48, 48, 3), [220, 20, 20], dtype=np.uint8)
    x = TorchClassifier(model).prepare(torch.from_numpy(red).permute(2, 0, 1).float() / 255)[None]
    red_cluster = int(
        fitted.clusters(region_features(first_conv_features(model, x), np.zeros((48, 48), dtype=int)))[0]
    )
    for variant in ("standard", "logreg"):
        weights = fitted.global_weights(variant, 0)
        assert int(np.argmax(weights)) == red_cluster, (variant, weights)


def test_normlime_is_cached_and_reused(tmp_path):
    first = explain(
        "normlime", make_tiny_cnn(), small_photo(32), 1, **fast_options("normlime", cache=str(tmp_path))
    )
    cached = list(tmp_path.glob("*.npz"))
    assert len(cached) == 1
    again = explain(  # same fit, other variant
        "normlime_logreg",
        make_tiny_cnn(),
        small_photo(32),
        1,
        **fast_options("normlime_logreg", cache=str(tmp_path)),
    )
    assert list(tmp_path.glob("*.npz")) == cached
    assert first.map.shape == again.map.shape == (32, 32)


def test_lrp_conserves_relevance_on_a_bias_free_network_and_restores_the_model():
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3, bias=False),
    ).eval()  # fmt: skip
    state = {k: v.clone() for k, v in model.state_dict().items()}
    image = small_photo(24)
    x = TorchClassifier(model).prepare(torch.from_numpy(image).permute(2, 0, 1).float() / 255)[None]
    with torch.no_grad():
        target = int(model(x)[0].argmax())
        logit = float(model(x)[0, target])
    relevance = explain("lrp", model, image, target).map
    assert float(relevance.sum()) == pytest.approx(logit, rel=1e-3)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in model.modules())
