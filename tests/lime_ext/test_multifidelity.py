"""Paired masks, the multi-fidelity (reduced-precision proxy + exact correction) estimator, the refusal of a
proxy the device lacks, and the calibration of the stopping test of num_samples='auto'."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from cnnxai.explainers.kernel_shap import shapley_coalitions
from lime_ext import (
    CamLimeExplainer,
    LimeSettings,
    Neighbourhood,
    NeighbourhoodSampler,
    multifidelity,
    predict_together,
)
from lime_ext.adaptive import expected_top_k_jaccard, ridge_covariance, top_k
from lime_ext.backends import BackendError
from lime_ext.multifidelity import resolve_proxy
from lime_ext.sampling import explanation_rng, sample_binary_masks
from lime_ext.surrogate import cosine_distances_to_first, exponential_kernel, fit_surrogate
from tests.helpers import small_photo

M = 12  # superpixels of the synthetic cases


def _linear(z: np.ndarray) -> np.ndarray:
    """A "model" with two classes whose outputs are linear in the mask plus a small interaction."""
    beta = np.linspace(1.0, -0.6, z.shape[1])
    first = 0.2 + z @ beta / z.shape[1] + 0.3 * z[:, 0] * z[:, 1]
    return np.stack([first, 1 - first], axis=1)


def _neighbourhood(seed: int, n: int, exact_rows: int | None, proxy_error, sampling: str = "iid"):
    """A neighbourhood of the linear model: fp32 outputs, or proxy outputs (fp32 + ``proxy_error(z)``) with the
    fp32 outputs of the first ``exact_rows`` samples."""
    z = sample_binary_masks(n, M, np.random.default_rng(seed), sampling)
    exact = _linear(z.astype(np.float64))
    image, segments = np.zeros((4, 3, 3), np.uint8), np.arange(M).reshape(4, 3)
    if exact_rows is None:
        return Neighbourhood(image, segments, z, exact)
    proxy = exact + proxy_error(z.astype(np.float64))
    return Neighbourhood(
        image, segments, z, proxy, exact=exact[:exact_rows], info={"proxy": {"precision": "x"}}
    )


def _noise(z: np.ndarray) -> np.ndarray:
    """A proxy's error: a fixed function of the mask (bf16 rounding is one), with a systematic part."""
    wobble = 0.01 * np.sin(37.0 * (z @ np.arange(1, M + 1)))
    return np.stack([wobble + 0.05 * z[:, 2], -wobble], axis=1)


def test_with_an_exact_proxy_the_estimator_is_the_fp32_fit():
    same = _neighbourhood(3, 200, 50, lambda z: np.zeros((len(z), 2)))
    plain = _neighbourhood(3, 200, None, None)
    fitted, expected = same.fit(labels=[0], cam_mode="none"), plain.fit(labels=[0], cam_mode="none")
    np.testing.assert_allclose(fitted.labels[0].attributions, expected.labels[0].attributions, atol=1e-12)
    assert fitted.labels[0].intercept == pytest.approx(expected.labels[0].intercept, abs=1e-12)
    assert fitted.info["proxy"]["rho"][0] == pytest.approx(1.0)


def test_the_estimator_is_the_proxy_fit_plus_the_corrections_fits():
    corrected = _neighbourhood(5, 300, 60, _noise)
    got = corrected.fit(labels=[0], cam_mode="none").labels[0].attributions
    z = corrected.masks.astype(np.float64)
    weights = exponential_kernel(cosine_distances_to_first(corrected.masks))

    scale = weights[:60].sum() / weights.sum()  # the head fits' penalty: alpha per unit of kernel weight

    def ridge(rows, y):
        alpha = 1.0 if rows == 300 else scale
        return Ridge(alpha=alpha).fit(z[:rows], y, sample_weight=weights[:rows]).coef_

    expected = (
        ridge(300, corrected.predictions[:, 0])
        + ridge(60, corrected.exact[:, 0])
        - ridge(60, corrected.predictions[:60, 0])
    )
    np.testing.assert_allclose(got, expected, atol=1e-10)
    # the same algebra holds for the Bayesian surrogate with fixed precisions (linear in y)
    bayes = corrected.fit_bayesian([0], prior_precision=2.0, noise_precision=50.0).labels[0].attributions
    parts = corrected._parts()
    pieces = [
        part.fit_bayesian([0], None, 2.0 * (1 if i == 0 else scale), 50.0).labels[0].attributions
        for i, part in enumerate(parts)
    ]
    np.testing.assert_allclose(bayes, pieces[0] + pieces[1] - pieces[2], atol=1e-10)


def test_the_estimator_is_unbiased_for_the_fp32_fit_and_the_proxy_alone_is_not():
    seeds, n, exact = range(60), 240, 40

    def attributions(neighbourhood: Neighbourhood) -> np.ndarray:
        return neighbourhood.fit(labels=[0], cam_mode="none", feature_selection="none").labels[0].attributions

    corrected = [_neighbourhood(s, n, exact, _noise) for s in seeds]
    estimates = np.array([attributions(nb) for nb in corrected])
    fp32 = np.array([attributions(_neighbourhood(s, n, None, None)) for s in seeds])
    proxy = np.array([attributions(replace(nb, exact=None)) for nb in corrected])
    # the mean over seeds of each estimator, against fp32 LIME's on the same masks, in units of the estimator's
    # standard error: the corrected one agrees superpixel by superpixel, the proxy alone is off by its
    # systematic error (0.05 on superpixel 2)
    for values, ok in ((estimates, True), (proxy, False)):
        standard_error = values.std(axis=0, ddof=1) / np.sqrt(len(seeds))
        z_scores = (values - fp32).mean(axis=0) / standard_error
        assert np.all(np.abs(z_scores) < 3) == ok, z_scores
    # and it is nearly as accurate as fp32 LIME of all n samples (rho is close to 1)
    assert np.mean((estimates - fp32.mean(0)) ** 2) < 1.3 * np.mean((fp32 - fp32.mean(0)) ** 2)


class _Doubled:
    """A classifier double with a reduced-precision twin: outputs are linear in the perturbed image; the twin
    adds a fixed error and can be made slower, to test the sampler's plan and proxy='auto'."""

    def __init__(self, error: float = 0.0, delay: float = 0.0, model=None) -> None:
        self.device, self.error, self.delay = torch.device("cpu"), error, delay
        self.model = model if model is not None else torch.nn.Linear(1, 1)
        self.calls = 0

    def prepare(self, images01):
        return images01

    def session(self):
        return nullcontext()

    def forward_prepared(self, batch):
        self.calls += len(batch)
        time.sleep(self.delay)
        score = batch.mean(dim=(1, 2, 3)) + self.error * torch.sin(50 * batch.sum(dim=(1, 2, 3)))
        return torch.stack([score, 1 - score], dim=1)

    def with_precision(self, precision):
        return _Doubled(0.02, self.delay, self.model)


def test_the_sampler_predicts_n_exact_and_N_proxy_rows_and_records_them(monkeypatch):
    monkeypatch.setattr(multifidelity, "device_has", lambda device, precision: True)
    image = small_photo(48)
    exact = _Doubled()
    explainer = CamLimeExplainer(
        exact, LimeSettings(200, "slic", proxy="bf16", exact_samples=40), batch_size=32
    )
    sampler = explainer.sampler(image, seed=1)
    neighbourhood = sampler.neighbourhood(200)
    assert sampler.forwards == {"bf16": 200, "fp32": 40} and exact.calls == 40
    assert neighbourhood.exact.shape == (40, 2) and neighbourhood.predictions.shape == (200, 2)
    explanation = explainer.explain(image, cam_mode="none", seed=1, labels=[0])
    record = explanation.info["proxy"]
    assert record["precision"] == "bf16" and record["proxy_samples"] == 200 and record["exact_samples"] == 40
    assert -1.0 <= record["rho"][0] < 0.99  # measured (this twin errs a lot), not assumed
    assert explanation.info["samples"]["forwards"] == {"bf16": 200, "fp32": 40}
    # a neighbourhood no larger than exact_samples is plain fp32
    assert sampler.neighbourhood(30).exact is None
    # several images predicted together: each precision in one stream, the same rows as alone
    together = [explainer.sampler(image, seed=1), explainer.sampler(image[::-1].copy(), seed=1)]
    predict_together(together, 200)
    assert [s.forwards for s in together] == [{"bf16": 200, "fp32": 40}] * 2
    np.testing.assert_allclose(together[0].neighbourhood(200).exact, neighbourhood.exact, atol=1e-6)


def test_paired_masks_are_whole_pairs_under_the_prefix_property():
    large = sample_binary_masks(301, 17, explanation_rng(7), "paired")
    assert np.all(large[0] == 1) and np.all(large[1] == 0)
    np.testing.assert_array_equal(large[1:-1:2], 1 - large[0:-1:2])
    for n in (2, 51, 120):
        np.testing.assert_array_equal(sample_binary_masks(n, 17, explanation_rng(7), "paired"), large[:n])
    np.testing.assert_array_equal(large, sample_binary_masks(301, 17, explanation_rng(7), "paired"))
    assert abs(large[2:].mean() - 0.5) < 0.01  # every row still a fair draw
    coalitions = shapley_coalitions(41, 9, np.random.default_rng(2), "paired")
    np.testing.assert_array_equal(
        coalitions[1::2], 1 - coalitions[0:-1:2]
    )  # KernelSHAP draws all rows at once
    assert NeighbourhoodSampler  # the sampler draws with sample_binary_masks (tested in test_adaptive)


def test_a_proxy_the_device_lacks_is_refused_and_auto_uses_one_only_where_faster(monkeypatch):
    with pytest.raises(
        BackendError, match="proxy=fp16"
    ):  # fp16 needs CUDA (explain() makes it a UserInputError)
        resolve_proxy(_Doubled(), "fp16", None)
    monkeypatch.setattr(multifidelity, "device_has", lambda device, precision: precision == "bf16")
    batch = torch.zeros(2, 3, 4, 4)
    slow = _Doubled(delay=0.02)  # its twin is as slow: no gain, no proxy
    assert resolve_proxy(slow, "auto", batch, 1000, 100)[0] == "none"

    class Faster(_Doubled):
        def with_precision(self, precision):
            return _Doubled(0.02, 0.0, self.model)

    precision, proxy, record = resolve_proxy(Faster(delay=0.02), "auto", batch, 1000, 100)
    assert precision == "bf16" and proxy is not None
    assert record["auto_seconds_per_forward"]["bf16"] < record["auto_seconds_per_forward"]["fp32"]


def test_a_proxy_the_device_lacks_is_a_one_line_user_error_of_explain(tiny_cnn):
    from cnnxai.errors import UserInputError
    from cnnxai.explainers import explain

    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with pytest.raises(UserInputError, match="proxy=fp16") as raised:
        explain("lime", tiny_cnn, image, 0, num_samples=20, segmenter="slic", proxy="fp16")
    assert "\n" not in str(raised.value)


@pytest.mark.slow  # a whole CLI run up to the refusal (model, segmentation): ~20 s on the shared CPU
def test_a_proxy_the_device_lacks_is_exit_2_on_the_command_line(tmp_path, capsys):
    from cnnxai.cli import main

    code = main("gradlime", ["--proxy", "fp16", "--num-samples", "20", "--output-dir", str(tmp_path / "out")])
    stderr = capsys.readouterr().err
    assert code == 2 and stderr.count("\n") == 1 and "proxy=fp16" in stderr, stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_stopping_tests_predicted_jaccard_matches_the_measured_one_between_seeds():
    """On a nonlinear synthetic model (LIME's error is misspecification, as on photos), the HC3 parametric
    bootstrap's expected top-5 Jaccard between two seeds is within 0.05 of the index measured between seeds."""
    m, k, seeds = 40, 5, 40
    beta = np.random.default_rng(1).normal(0, 1, m)
    beta[:8] = np.linspace(2.0, 1.6, 8)  # near-ties at the top-5 boundary

    def model(z):
        return 1 / (
            1 + np.exp(-(0.6 * z @ beta - 0.15 * m * 0.6 + 0.8 * z[:, 0] * z[:, 1] - 0.8 * z[:, 2] * z[:, 3]))
        )

    for n in (150, 300):
        fits, predicted = [], []
        for seed in range(seeds):
            z = sample_binary_masks(n, m, np.random.default_rng(seed)).astype(np.float64)
            y = model(z)
            weights = exponential_kernel(cosine_distances_to_first(z))
            coef = fit_surrogate(z, y, weights, feature_selection="none").coef
            fits.append(coef)
            predicted.append(expected_top_k_jaccard(coef, ridge_covariance(z, y, weights, coef, 1.0), k))
        tops = top_k(np.array(fits), k)
        common = [(tops[i] & tops[j]).sum() for i in range(seeds) for j in range(i + 1, seeds)]
        measured = np.mean([c / (2 * k - c) for c in common])
        assert abs(np.mean(predicted) - measured) < 0.05, (n, np.mean(predicted), measured)


def test_kernel_shap_with_a_proxy_records_its_measured_rho(monkeypatch, tiny_cnn):
    """KernelSHAP's multi-fidelity record carries rho as LIME's does: the correlation of the fp32 and proxy fits'
    residuals on the first exact_samples coalitions (1 for identical values, lower for a noisy proxy)."""
    from cnnxai.explainers import explain
    from cnnxai.explainers.kernel_shap import residual_correlation

    z = shapley_coalitions(80, 9, np.random.default_rng(3))
    fine = _linear(z)[:, 0] + 0.3 * z[:, 0] * z[:, 4]  # an interaction no additive fit captures
    noise = np.random.default_rng(4).normal(0, 0.3, len(fine))
    assert residual_correlation(z, fine, fine) == pytest.approx(1.0)
    assert residual_correlation(z, fine, fine + noise) < 0.9
    monkeypatch.setattr(multifidelity, "device_has", lambda device, precision: True)  # CPU bf16 autocast
    attribution = explain("kernel_shap", tiny_cnn, small_photo(48), 0, num_samples=60, segmenter="slic",
                          proxy="bf16", exact_samples=20)  # fmt: skip
    record = attribution.extras["samples"]
    assert record["forwards"] == {"bf16": 60, "fp32": 20} and record["proxy"]["precision"] == "bf16"
    assert -1.0 <= record["proxy"]["rho"][0] <= 1.0
