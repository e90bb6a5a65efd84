"""Golden numbers for every metric on models small enough to work out by hand, and the NaN reasons."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from cnnxai.errors import UserInputError
from cnnxai.metrics import METRICS, ImageMetrics, resolve_settings, sufficiency
from cnnxai.metrics.causal import blurred, gaussian_kernel


class LinearLogit(nn.Module):
    """Two classes: logit 0 is sum(w * x) over channels and pixels, logit 1 is 0, so p0 = sigmoid(sum(w * x))."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.float(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x * self.weight).sum(dim=(1, 2, 3))
        return torch.stack([z, torch.zeros_like(z)], dim=1)


class ConstantModel(nn.Module):
    """Ignores its input."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.3, -0.2, 0.1]), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), -1) + 0 * x.sum()


def sigmoid(z):
    return 1 / (1 + np.exp(-np.asarray(z, dtype=np.float64)))


def metrics_of(model, x, metrics, overrides=None, **kwargs) -> ImageMetrics:
    """ImageMetrics of target class 0 with ``overrides`` of the metrics asked for (others are ignored)."""
    overrides = {key: value for key, value in (overrides or {}).items() if key.split(".")[0] in metrics}
    settings = resolve_settings(list(metrics), overrides)
    return ImageMetrics(
        model, torch.as_tensor(x, dtype=torch.float32), 0, settings, seed=3, key="k", **kwargs
    )


def ramp_model(size: int = 4) -> tuple[LinearLogit, np.ndarray, np.ndarray]:
    """Weights 1..size^2 in raster order, the input 0.01 everywhere; the map ranks pixels as the weights do."""
    weights = np.arange(1, size * size + 1, dtype=np.float64).reshape(1, size, size)
    return LinearLogit(torch.from_numpy(weights)), np.full((1, size, size), 0.01), weights[0]


def test_deletion_of_a_linear_model_is_the_written_down_curve():
    model, x, weights = ramp_model()
    image = metrics_of(model, x, ["Deletion"], {"Deletion.step": "4"})
    result = image.score(weights, ["Deletion"])["Deletion"]
    # Each step zeroes the four largest remaining weights: 136, 136-58, 78-42, 36-26, 0 (times 0.01).
    expected_curve = sigmoid([1.36, 0.78, 0.36, 0.10, 0.0])
    np.testing.assert_allclose(result.curve, expected_curve, rtol=1e-6)
    trapezoid = (expected_curve.sum() - expected_curve[0] / 2 - expected_curve[-1] / 2) / 4
    assert result.value == pytest.approx(trapezoid, rel=1e-6)


def test_insertion_of_a_linear_model_is_the_written_down_curve():
    model, x, weights = ramp_model()
    image = metrics_of(model, x, ["Insertion"], {"Insertion.step": "4", "Insertion.substrate": "zeros"})
    result = image.score(weights, ["Insertion"])["Insertion"]
    expected_curve = sigmoid([0.0, 0.58, 1.00, 1.26, 1.36])
    np.testing.assert_allclose(result.curve, expected_curve, rtol=1e-6)
    assert result.value == pytest.approx(
        (expected_curve.sum() - (0.5 + expected_curve[-1]) / 2) / 4, rel=1e-6
    )


def test_a_perfect_map_ranks_better_than_its_reverse_in_deletion_and_insertion():
    model, x, weights = ramp_model(8)
    image = metrics_of(model, x, ["Deletion", "Insertion"], {"Deletion.step": "8", "Insertion.step": "8"})
    good, bad = (
        image.score(weights, ["Deletion", "Insertion"]),
        image.score(-weights, ["Deletion", "Insertion"]),
    )
    assert good["Deletion"].value < bad["Deletion"].value
    assert good["Insertion"].value > bad["Insertion"].value


def test_insertion_blur_is_rises_kernel_with_zero_padding():
    from scipy.ndimage import convolve

    kernel = gaussian_kernel(11, 5.0)
    assert kernel.shape == (11, 11) and kernel.sum() == pytest.approx(1.0)
    assert kernel[5, 5] == kernel.max() and np.allclose(kernel, kernel.T)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(3, 20, 17)).astype(np.float32))
    expected = np.stack([convolve(c.numpy().astype(np.float64), kernel, mode="constant") for c in x])
    np.testing.assert_allclose(blurred(x).numpy(), expected, atol=1e-5)


def exact_contributions(weight: np.ndarray, x: np.ndarray, baseline: float) -> np.ndarray:
    """What each pixel adds to the logit over the baseline, summed over channels: (H,W)."""
    return (weight * (x - baseline)).sum(axis=0)


@pytest.mark.parametrize("metric", ["FaithfulnessCorrelation", "FaithfulnessEstimate"])
def test_correlation_metrics_are_one_for_the_exact_contributions_and_minus_one_reversed(metric):
    rng = np.random.default_rng(1)
    weight, x = rng.normal(size=(3, 8, 8)), rng.normal(size=(3, 8, 8))
    overrides = {"FaithfulnessCorrelation.subset_size": "8", "FaithfulnessCorrelation.nr_runs": "20",
                 "FaithfulnessEstimate.features_in_step": "4"}  # fmt: skip
    image = metrics_of(LinearLogit(torch.from_numpy(weight)), x, [metric], overrides)
    contributions = exact_contributions(weight, x, baseline=x.min())  # 'black' = the image minimum
    assert image.score(contributions, [metric])[metric].value == pytest.approx(1.0, abs=1e-6)
    assert image.score(-contributions, [metric])[metric].value == pytest.approx(-1.0, abs=1e-6)


def test_element_features_split_a_pixel_over_its_channels():
    """With 'element' features (Quantus 0.6.0 on RGB) a channel is perturbed alone, so the pixel's total
    contribution is no longer the right attribution: the exactly faithful map scores below 1."""
    rng = np.random.default_rng(1)
    weight, x = rng.normal(size=(3, 8, 8)), rng.normal(size=(3, 8, 8))
    overrides = {"FaithfulnessCorrelation.subset_size": "8", "FaithfulnessCorrelation.nr_runs": "40"}
    image = metrics_of(LinearLogit(torch.from_numpy(weight)), x, ["FaithfulnessCorrelation"], overrides,
                       feature_unit="element")  # fmt: skip
    value = image.score(exact_contributions(weight, x, x.min()), ["FaithfulnessCorrelation"])
    assert value["FaithfulnessCorrelation"].value < 0.9


def test_monotonicity_is_one_when_larger_weights_move_the_prediction_more():
    weights = np.array([0.3, 1.2, 0.7, 2.0, 0.1, 1.6, 0.9, 0.5, 1.1]).reshape(1, 3, 3)
    x = np.full((1, 3, 3), 0.2)
    fills = np.tile([-1.0, 0.5, 2.0], 9)  # the same three fills for every group: only the weight differs
    image = metrics_of(
        LinearLogit(torch.from_numpy(weights)), x, ["MonotonicityCorrelation"],
        {"MonotonicityCorrelation.features_in_step": "1", "MonotonicityCorrelation.nr_samples": "3"},
        draws={"MonotonicityCorrelation.fills": fills},
    )  # fmt: skip
    assert image.score(weights[0], ["MonotonicityCorrelation"])["MonotonicityCorrelation"].value == 1.0


def test_irof_of_a_four_region_image_follows_the_running_mean_by_hand():
    # Quadrants 0, 0.4, 0.8, 1.2 (16 pixels each); the map ranks them 1.2 > 0.8 > 0.4 > 0.
    x = np.zeros((1, 8, 8))
    x[0, :4, 4:], x[0, 4:, :4], x[0, 4:, 4:] = 0.4, 0.8, 1.2
    model = LinearLogit(torch.full((1, 8, 8), 0.05))
    image = metrics_of(model, x, ["IROF"], {"IROF.n_segments": "4"})
    # Each quadrant takes the mean of the image as it is then: 0.6, 0.45, 0.3625, 0.353125; the pixel sums
    # go 38.4 -> 28.8 -> 23.2 -> 22.6 -> 28.25.
    probabilities = sigmoid(0.05 * np.array([28.8, 23.2, 22.6, 28.25])) / sigmoid(0.05 * 38.4)
    expected = 4 - np.trapezoid(probabilities, dx=1)
    assert image.score(x[0] + 1, ["IROF"])["IROF"].value == pytest.approx(expected, rel=1e-6)


def test_region_perturbation_of_a_linear_model_by_hand():
    model, x, weights = ramp_model()
    overrides = {"RegionPerturbation.patch_size": "2", "RegionPerturbation.regions_evaluation": "2",
                 "RegionPerturbation.baseline": "zeros"}  # fmt: skip
    image = metrics_of(model, x, ["RegionPerturbation"], overrides)
    # 2x2 patches of the weights sum to 14, 22, 46, 54: the 54 patch goes first, then the 46 one.
    p0 = sigmoid(1.36)
    expected = np.mean([p0 - sigmoid(1.36 - 0.54), p0 - sigmoid(1.36 - 1.00)])
    assert image.score(weights, ["RegionPerturbation"])["RegionPerturbation"].value == pytest.approx(expected)


def test_sufficiency_counts_neighbours_of_the_same_class():
    near, far = np.eye(4)[:, ::-1].copy(), np.eye(4)
    maps = [near, near * 2, far]  # the first two are the same after |a| / max|a|
    same = sufficiency(maps, [5, 5, 7], threshold=0.6)
    assert [r.value for r in same[:2]] == [1.0, 1.0]
    assert math.isnan(same[2].value) and "no other explanation" in same[2].reason
    differ = sufficiency(maps, [5, 6, 7], threshold=0.6)
    assert [r.value for r in differ[:2]] == [0.0, 0.0]
    everyone = sufficiency(maps, [5, 5, 5], threshold=1.0)  # all within reach: the share of the same class
    assert [r.value for r in everyone] == [1.0, 1.0, 1.0]
    alone = sufficiency(maps[:1], [5], threshold=0.6)
    assert math.isnan(alone[0].value) and "at least two images" in alone[0].reason


def test_complexity_metrics_by_hand():
    one_hot = np.zeros((2, 2))
    one_hot[1, 0] = -3.0
    image = metrics_of(
        ConstantModel(), np.zeros((3, 2, 2)), ["Sparseness", "Complexity", "EffectiveComplexity"]
    )
    results = image.score(one_hot, ["Sparseness", "Complexity", "EffectiveComplexity"])
    # Gini of (e, e, e, 1+e), e = 1e-7: (3 * (1+e) - 3e - e + e) / (4 (1 + 4e)) = 3 / (4 (1 + 4e)).
    assert results["Sparseness"].value == pytest.approx(0.75 / (1 + 4e-7), rel=1e-6)
    assert results["Complexity"].value == pytest.approx(0.0, abs=1e-9)
    assert results["EffectiveComplexity"].value == 1.0
    flat = image.score(np.full((2, 2), 0.5), ["Sparseness", "Complexity", "EffectiveComplexity"])
    assert flat["Sparseness"].value == pytest.approx(0.0, abs=1e-6)
    assert flat["Complexity"].value == pytest.approx(math.log(4), rel=1e-6)
    assert flat["EffectiveComplexity"].value == 4.0


def test_constant_map_and_constant_model_give_nan_with_a_reason():
    rng = np.random.default_rng(0)
    x = np.zeros((3, 8, 8))  # four flat quadrants: SLIC finds them
    x[:, :4, 4:], x[:, 4:, :4], x[:, 4:, 4:] = 0.4, 0.8, 1.2
    model = LinearLogit(torch.from_numpy(rng.normal(size=(3, 8, 8))))
    names = [name for name, spec in METRICS.items() if not spec.batch_level]
    overrides = {"FaithfulnessCorrelation.subset_size": "8", "FaithfulnessCorrelation.nr_runs": "10",
                 "FaithfulnessEstimate.features_in_step": "8", "MonotonicityCorrelation.features_in_step": "8",
                 "MonotonicityCorrelation.nr_samples": "2", "IROF.n_segments": "4",
                 "RegionPerturbation.patch_size": "4", "Deletion.step": "16", "Insertion.step": "16"}  # fmt: skip
    constant_map = metrics_of(model, x, names, overrides).score(np.full((8, 8), 0.7), names)
    for name in ["FaithfulnessCorrelation", "FaithfulnessEstimate", "MonotonicityCorrelation", "IROF",
                 "RegionPerturbation", "Deletion", "Insertion"]:  # fmt: skip
        assert math.isnan(constant_map[name].value) and "constant" in constant_map[name].reason, name
    assert not math.isnan(constant_map["Complexity"].value)

    ignored = metrics_of(ConstantModel(), x, names, overrides).score(rng.normal(size=(8, 8)), names)
    for name in ["FaithfulnessCorrelation", "FaithfulnessEstimate", "MonotonicityCorrelation"]:
        assert math.isnan(ignored[name].value) and "ignores the perturbations" in ignored[name].reason, name
    assert ignored["IROF"].value == pytest.approx(1.0)  # every ratio is 1: n - (n - 1)

    zero = metrics_of(model, x, names, overrides).score(np.zeros((8, 8)), names)
    assert math.isnan(zero["Complexity"].value) and "all zero" in zero["Complexity"].reason
    broken = np.ones((8, 8))
    broken[2, 3] = np.nan
    assert all(
        "non-finite" in r.reason for r in metrics_of(model, x, names, overrides).score(broken, names).values()
    )


def test_draws_depend_on_seed_and_image_only_and_values_not_on_batch_size():
    rng = np.random.default_rng(2)
    model, x, a = (
        LinearLogit(torch.from_numpy(rng.normal(size=(3, 8, 8)))),
        rng.normal(size=(3, 8, 8)),
        rng.normal(size=(8, 8)),
    )
    names = ["FaithfulnessCorrelation", "MonotonicityCorrelation", "Deletion"]
    overrides = {"FaithfulnessCorrelation.subset_size": "8", "FaithfulnessCorrelation.nr_runs": "12",
                 "MonotonicityCorrelation.features_in_step": "8", "MonotonicityCorrelation.nr_samples": "3",
                 "Deletion.step": "5"}  # fmt: skip
    first = metrics_of(model, x, names, overrides, batch_size=1).score(a, names)
    again = metrics_of(model, x, names[::-1], overrides, batch_size=7).score(a, names[:1])
    assert again["FaithfulnessCorrelation"].value == pytest.approx(
        first["FaithfulnessCorrelation"].value, abs=1e-6
    )
    other_key = ImageMetrics(model, torch.as_tensor(x, dtype=torch.float32), 0, resolve_settings(names, overrides),
                             seed=3, key="another image")  # fmt: skip
    assert (
        other_key.score(a, names[:1])["FaithfulnessCorrelation"].value
        != first["FaithfulnessCorrelation"].value
    )


def test_settings_are_checked():
    assert resolve_settings(["IROF"], {"iROF.n_segments": "50"})["IROF"]["n_segments"] == 50
    bad = [{"Nope.x": "1"}, {"IROF.speed": "2"}, {"IROF.n_segments": "many"}, {"Deletion.step": "0"},
           {"Insertion.substrate": "noise"}, {"FaithfulnessEstimate.baseline": "purple"}]  # fmt: skip
    for overrides in bad:
        with pytest.raises(UserInputError):
            resolve_settings(["IROF", "Deletion", "Insertion", "FaithfulnessEstimate"], overrides)
    with pytest.raises(UserInputError, match="not among the metrics"):
        resolve_settings(["IROF"], {"Deletion.step": "4"})


def test_metrics_on_a_session_use_its_one_forward_and_memo():
    """ImageMetrics.of(session): the prediction, logit and probability of the session's forward (the same numbers
    as the metrics' own), the metrics' per-image results in the session's memo, and nothing of another model."""
    from cnnxai.session import ImageSession
    from tests.helpers import make_tiny_cnn, small_photo

    model, frame = make_tiny_cnn(), small_photo(32)
    session = ImageSession(model, frame)
    names = ["Deletion", "Insertion"]
    settings = resolve_settings(names, {"Deletion.step": "256", "Insertion.step": "256"})
    on_session = ImageMetrics.of(session, None, settings, seed=1, key="k")
    alone = ImageMetrics(model, session.x, None, settings, seed=1, key="k")
    assert on_session.scorer.forwards == 0 and alone.scorer.forwards == 1
    assert (on_session.predicted, on_session.logit, on_session.probability) == (
        alone.predicted, alone.logit, alone.probability
    )
    assert on_session.predicted == session.predicted
    attribution = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    scored, expected = on_session.score(attribution, names), alone.score(attribution, names)
    assert {n: r.value for n, r in scored.items()} == {n: r.value for n, r in expected.items()}
    assert session.memo and session.memo is on_session.cache
    with pytest.raises(ValueError, match="another model"):
        ImageMetrics(make_tiny_cnn(), session.x, None, settings, session=session)
