"""Our batched metrics against Quantus 0.6.0, one for one, on inputs where Quantus is right.

Quantus draws from numpy's global generator; each test records the draws Quantus makes (its subsets and
uniform fills) and hands the same draws to ours, so the values must agree to float rounding. Where Quantus
0.6.0 is broken we patch only the breakage: ``np.trapz`` (removed in numpy 2.4) for IROF, and IROF's
mask that does not broadcast over RGB channels.
"""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import scipy.stats
import torch
from quantus.functions.perturb_func import baseline_replacement_by_mask
from torch import nn

from cnnxai.metrics import ImageMetrics, resolve_settings, sufficiency
from tests.helpers import small_photo

SIZE = 28


def tiny_model(channels: int) -> nn.Module:
    torch.manual_seed(7)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.Tanh(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 5),
    ).eval()  # fmt: skip


def normalised_photo(channels: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """A real photo, crop by seed, normalised: float32 (1,C,size,size)."""
    photo = small_photo(size + 8).astype(np.float32) / 255
    top, left = seed % 8, (3 * seed) % 8
    photo = np.moveaxis(photo[top : top + size, left : left + size], -1, 0)
    if channels == 1:
        photo = photo.mean(axis=0, keepdims=True)
    return ((photo - 0.45) / 0.25)[None].astype(np.float32)


def random_map(seed: int = 0) -> np.ndarray:
    """A signed map without ties, (1,1,SIZE,SIZE) float32."""
    return np.random.default_rng(seed).normal(size=(1, 1, SIZE, SIZE)).astype(np.float32)


class DrawRecorder:
    """Records what numpy's global ``choice`` and ``uniform`` return while Quantus runs."""

    def __init__(self, monkeypatch) -> None:
        self.choice: list[np.ndarray] = []
        self.uniform: list[np.ndarray] = []
        original_choice, original_uniform = np.random.choice, np.random.uniform

        def choice(*args, **kwargs):
            self.choice.append(original_choice(*args, **kwargs))
            return self.choice[-1]

        def uniform(*args, **kwargs):
            self.uniform.append(np.atleast_1d(original_uniform(*args, **kwargs)))
            return self.uniform[-1]

        monkeypatch.setattr(np.random, "choice", choice)
        monkeypatch.setattr(np.random, "uniform", uniform)


def ours(model, x, metric, params, unit="pixel", draws=None, a=None):
    target = int(model(torch.from_numpy(x)).argmax())
    settings = resolve_settings([metric], {f"{metric}.{k}": str(v) for k, v in params.items()})
    image = ImageMetrics(model, torch.from_numpy(x), target, settings, feature_unit=unit, draws=draws)
    return image.score((random_map() if a is None else a)[0, 0], [metric])[metric].value, target


def theirs(model, x, target, metric, a=None):
    return metric(
        model=model,
        x_batch=x,
        y_batch=np.array([target]),
        a_batch=random_map() if a is None else a,
        device="cpu",
    )[0]


@pytest.mark.parametrize("channels, unit", [(1, "pixel"), (1, "element"), (3, "element")])
def test_faithfulness_correlation(channels, unit, monkeypatch):
    model, x = tiny_model(channels), normalised_photo(channels)
    target = int(model(torch.from_numpy(x)).argmax())
    recorder = DrawRecorder(monkeypatch)
    metric = quantus.FaithfulnessCorrelation(
        nr_runs=30, subset_size=28, perturb_baseline="black", return_aggregate=False, disable_warnings=True
    )
    expected = theirs(model, x, target, metric)
    draws = {"FaithfulnessCorrelation.subsets": np.stack(recorder.choice)}
    value, _ = ours(model, x, "FaithfulnessCorrelation", {"nr_runs": 30, "subset_size": 28}, unit, draws)
    assert value == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("channels, unit", [(1, "pixel"), (3, "element")])
def test_faithfulness_estimate(channels, unit):
    model, x = tiny_model(channels), normalised_photo(channels)
    value, target = ours(model, x, "FaithfulnessEstimate", {"features_in_step": 28}, unit)
    metric = quantus.FaithfulnessEstimate(
        features_in_step=28, perturb_baseline="black", disable_warnings=True
    )
    assert value == pytest.approx(theirs(model, x, target, metric), abs=1e-5)


@pytest.mark.parametrize("channels, unit, seed", [(1, "pixel", 2), (3, "element", 4)])
def test_monotonicity_correlation(channels, unit, seed, monkeypatch):
    """A rank correlation is equal only where the ranks are: the fills are seeded so that Quantus's
    prediction variances are apart by far more than float32 rounding (checked), on any CPU."""
    model, x = tiny_model(channels), normalised_photo(channels)
    target = int(model(torch.from_numpy(x)).argmax())
    np.random.seed(seed)  # Quantus draws its fills from numpy's global generator
    recorder = DrawRecorder(monkeypatch)
    variances: list[np.ndarray] = []
    spearman = scipy.stats.spearmanr
    monkeypatch.setattr(
        scipy.stats, "spearmanr", lambda a, b, **kw: variances.append(np.ravel(b)) or spearman(a, b, **kw)
    )
    metric = quantus.MonotonicityCorrelation(
        nr_samples=4, features_in_step=49, perturb_baseline="uniform", disable_warnings=True,
        perturb_func_kwargs={"uniform_low": float(x.min()), "uniform_high": float(x.max())},
    )  # fmt: skip
    expected = theirs(model, x, target, metric)
    ordered = np.sort(variances[0])
    assert (np.diff(ordered) / ordered[1:]).min() > 1e-3  # no near-tie that rounding could flip
    draws = {"MonotonicityCorrelation.fills": np.concatenate(recorder.uniform)}
    params = {"nr_samples": 4, "features_in_step": 49}
    value, _ = ours(model, x, "MonotonicityCorrelation", params, unit, draws)
    assert value == pytest.approx(expected, abs=1e-9)  # a rank correlation: equal ranks, equal value


def broadcast_mask(arr, mask, **kwargs):
    """Quantus's IROF perturbation with its (B,1,H,W) mask broadcast over the channels (its RGB bug)."""
    return baseline_replacement_by_mask(arr, np.broadcast_to(mask, arr.shape), **kwargs)


@pytest.mark.parametrize("channels, unit", [(1, "pixel"), (3, "pixel"), (3, "element")])
def test_irof(channels, unit, monkeypatch):
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)  # removed in numpy 2.4; Quantus calls it
    model, x = tiny_model(channels), normalised_photo(channels)
    value, target = ours(model, x, "IROF", {}, unit)
    metric = quantus.IROF(
        segmentation_method="slic", perturb_baseline="mean", return_aggregate=False, disable_warnings=True,
        perturb_func=broadcast_mask if channels == 3 else None,
    )  # fmt: skip
    assert value == pytest.approx(theirs(model, x, target, metric), rel=1e-5)


@pytest.mark.parametrize(
    "channels, unit, patch", [(1, "pixel", 7), (1, "pixel", 5), (3, "pixel", 5), (3, "element", 7)]
)
def test_region_perturbation(channels, unit, patch, monkeypatch):
    model, x = tiny_model(channels), normalised_photo(channels)
    target = int(model(torch.from_numpy(x)).argmax())
    recorder = DrawRecorder(monkeypatch)
    metric = quantus.RegionPerturbation(
        patch_size=patch, regions_evaluation=3, perturb_baseline="uniform", disable_warnings=True,
        perturb_func_kwargs={"uniform_low": float(x.min()), "uniform_high": float(x.max())},
    )  # fmt: skip
    curve = theirs(model, x, target, metric)
    draws = {"RegionPerturbation.fills": np.concatenate(recorder.uniform)}
    params = {"patch_size": patch, "regions_evaluation": 3}
    value, _ = ours(model, x, "RegionPerturbation", params, unit, draws)
    assert value == pytest.approx(float(np.mean(curve)), abs=1e-6)  # ours: the mean drop over the regions


def test_sufficiency_over_a_batch():
    model = tiny_model(3)
    x = np.concatenate([normalised_photo(3, seed=s) for s in range(6)])
    rng = np.random.default_rng(4)
    maps = rng.normal(size=(6, 1, SIZE, SIZE)).astype(np.float32)
    maps[1], maps[4] = maps[0] + 0.1 * maps[1], maps[3] + 0.2 * maps[4]  # a few close pairs
    maps /= np.abs(maps).max(
        axis=(1, 2, 3), keepdims=True
    )  # max |a| = 1 each: Quantus's batch max is per image
    predicted = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    expected = quantus.Sufficiency(threshold=0.6, return_aggregate=False, disable_warnings=True)(
        model=model, x_batch=x, y_batch=predicted, a_batch=maps, device="cpu"
    )
    results = sufficiency([m[0] for m in maps], list(predicted), threshold=0.6)
    assert sum(r.value == r.value for r in results) >= 4  # most have neighbours: a real test
    for result, value in zip(results, expected, strict=True):
        if result.value == result.value:
            assert result.value == pytest.approx(value, abs=1e-12)
        else:  # no neighbour within the threshold: Quantus returns 0, we say it is undefined
            assert value == 0.0 and "no other explanation" in result.reason


@pytest.mark.parametrize("name", ["Sparseness", "Complexity", "EffectiveComplexity"])
def test_complexity_metrics(name):
    model, x = tiny_model(3), normalised_photo(3)
    a = random_map(5)
    a[0, 0, :10] = 0  # some exact zeros for EffectiveComplexity to skip
    value, target = ours(model, x, name, {}, a=a)
    metric = getattr(quantus, name)(disable_warnings=True)
    assert value == pytest.approx(float(theirs(model, x, target, metric, a=a)), rel=1e-6)
