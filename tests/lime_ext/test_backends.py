"""The forward backends (lime_ext.backends): each runtime gives torch's probabilities to 1e-4 and the same LIME
explanation, exports once and finds its cache, falls back to torch when it cannot export or disagrees, and
refuses what cannot run in one line."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from cnnxai.cli import main as gradlime_main
from cnnxai.errors import UserInputError
from cnnxai.explainers import explain
from lime_ext import TorchClassifier, backends
from lime_ext.backends import BackendError, default_backend
from tests.helpers import make_tiny_cnn, small_photo

RUNTIMES = [
    pytest.param(name, marks=pytest.mark.skipif(not backends.installed(name), reason=f"{name} not installed"))
    for name in ("onnxruntime", "openvino")
]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test exports into its own cache folder."""
    monkeypatch.setenv("CNNXAI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


def inputs(count: int = 6, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand((count, 3, size, size), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("backend", RUNTIMES)
def test_a_runtime_gives_torchs_probabilities_on_the_tiny_cnn(backend, cache):
    model = make_tiny_cnn()
    reference = TorchClassifier(model, backend="torch")(inputs())
    classifier = TorchClassifier(model, backend=backend)
    got = classifier(inputs())
    assert torch.allclose(got, reference, atol=1e-4, rtol=0) and not torch.equal(got, torch.zeros_like(got))
    record = classifier.backend_record
    assert record["backend"] == backend and record["fallback"] is None and record["cache_hit"] is False
    assert (
        record["cache_path"].startswith(str(cache)) and (cache / record["cache_path"].split("/")[-1]).exists()
    )
    # an odd batch size after the first (OpenVINO compiles one static shape per size)
    assert torch.allclose(classifier(inputs(3, seed=1)), TorchClassifier(model)(inputs(3, seed=1)), atol=1e-4)


@pytest.mark.parametrize("backend", RUNTIMES)
def test_a_second_model_with_the_same_weights_finds_the_cached_export(backend):
    first, second = make_tiny_cnn(), make_tiny_cnn()
    TorchClassifier(first, backend=backend)(inputs(2))
    classifier = TorchClassifier(second, backend=backend)
    classifier(inputs(2))
    assert classifier.backend_record["cache_hit"] is True
    other = make_tiny_cnn(seed=1)  # other weights: another key
    changed = TorchClassifier(other, backend=backend)
    changed(inputs(2))
    assert changed.backend_record["cache_hit"] is False
    assert changed.backend_record["cache_path"] != classifier.backend_record["cache_path"]


@pytest.fixture(scope="module")
def lite0():
    from cnnxai.zoo import load_model

    model, _ = load_model("efficientnet_lite0")
    image = small_photo(224)
    return model, image, explain("lime", model, image, 285, num_samples=24, segmenter="slic", backend="torch")


@pytest.mark.parametrize("backend", RUNTIMES)
def test_a_runtime_gives_the_same_lime_explanation_on_efficientnet_lite0(backend, lite0):
    model, image, reference = lite0
    got = explain("lime", model, image, 285, num_samples=24, segmenter="slic", backend=backend)
    top = np.argsort(-reference.extras["superpixel_attributions"])[:5]
    assert list(np.argsort(-got.extras["superpixel_attributions"])[:5]) == list(top)
    assert np.allclose(got.map, reference.map, atol=1e-4)
    x = TorchClassifier(model).prepare_rgb(image)[None]
    exact = TorchClassifier(model, backend="torch")
    fast = TorchClassifier(model, backend=backend)
    with exact.session():
        assert torch.allclose(fast.forward_prepared(x), exact.forward_prepared(x), atol=1e-4, rtol=0)
    assert fast.backend_record["backend"] == backend


class Unexportable(nn.Module):
    """A convolution followed by an operator with no ONNX export (erfcx)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.erfcx(self.conv(x)).mean((2, 3))


class TracedBranch(nn.Module):
    """Takes a branch on the input's mean: the export traces the zero input's branch, so a bright input differs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x).mean((2, 3))
        return out * 5 if bool(x.mean() > 0.25) else out


@pytest.mark.parametrize("backend", RUNTIMES)
def test_a_model_that_does_not_export_or_disagrees_runs_torch_and_says_why_once(backend, capsys):
    model = Unexportable().eval()
    classifier = TorchClassifier(model, backend=backend)
    assert torch.equal(classifier(inputs(2)), TorchClassifier(model, backend="torch")(inputs(2)))
    record = classifier.backend_record
    assert record["backend"] == "torch" and "UnsupportedOperatorError" in record["fallback"]
    TorchClassifier(model, backend=backend)(inputs(2))  # the failure is remembered: no second export, no line
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"note: {backend} could not run Unexportable")

    branching = TracedBranch().eval()
    classifier = TorchClassifier(branching, backend=backend)
    bright = inputs(2) * 0.5 + 0.5
    assert torch.equal(classifier(bright), TorchClassifier(branching, backend="torch")(bright))
    assert classifier.backend_record["backend"] == "torch"
    assert "differs from torch" in classifier.backend_record["fallback"]


@pytest.mark.parametrize("backend", RUNTIMES)
def test_export_leaves_the_model_as_it_was(backend):
    model = make_tiny_cnn().train()
    model[3].eval()  # mixed modes come back mixed
    before = copy.deepcopy(model.state_dict())
    TorchClassifier(model, backend=backend)(inputs(2))
    assert model.training and not model[3].training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("backend", RUNTIMES)
def test_occlusion_and_the_process_default_reach_the_runtime(backend):
    model = make_tiny_cnn()
    image = (inputs(1, 32)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    reference = explain("occlusion", model, image, 1, window=8, stride=8, backend="torch").map
    assert np.allclose(explain("occlusion", model, image, 1, window=8, stride=8, backend=backend).map, reference,
                       atol=1e-4)  # fmt: skip
    with default_backend(backend):
        assert TorchClassifier(model).backend == backend
        assert [r["backend"] for r in backends.process_record()["sessions"]][-1] == backend
    assert TorchClassifier(model).backend == "torch"


def test_refusals_are_one_line(monkeypatch, capsys):
    model = make_tiny_cnn()
    with pytest.raises(BackendError, match="unknown backend 'tensorrt'; choose one of auto, torch"):
        TorchClassifier(model, backend="tensorrt")
    with pytest.raises(UserInputError, match="unknown backend"):
        explain("lime", model, np.zeros((16, 16, 3), np.uint8), 0, num_samples=4, backend="tensorrt")
    installed = backends.installed
    monkeypatch.setattr(backends, "installed", lambda name: name == "torch")
    with pytest.raises(BackendError, match="backend openvino is not installed; pip install onnx openvino"):
        TorchClassifier(model, backend="openvino")
    assert TorchClassifier(model, backend="auto").backend == "torch"  # auto without a runtime: torch
    monkeypatch.setattr(backends, "installed", installed)
    if backends.installed("onnxruntime") or backends.installed("openvino"):
        assert TorchClassifier(model, backend="auto").backend != "torch"
    # a task target (raw output): a new module per explained box, so auto does not export it
    assert TorchClassifier(model, output="identity", backend="auto").backend == "torch"
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: False)
    with pytest.raises(BackendError, match="bf16: this CPU has no bf16 units"):
        TorchClassifier(model).with_precision("bf16")
    with pytest.raises(BackendError, match="fp16 needs CUDA"):
        TorchClassifier(model, precision="fp16")
    assert gradlime_main("gradlime", ["--backend", "tensorrt", "--output-dir", "unused"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: argument --backend: unknown backend 'tensorrt'; choose one of auto, torch, onnxruntime, "
                   "openvino (see --help)"]  # fmt: skip


@pytest.mark.skipif(not backends.cpu_has_bf16(), reason="no bf16 units on this CPU")
@pytest.mark.parametrize("backend", ["torch", *RUNTIMES])
def test_with_precision_runs_bf16_close_to_fp32_on_the_same_model(backend):
    model = make_tiny_cnn()
    fp32 = TorchClassifier(model, backend=backend)
    bf16 = fp32.with_precision("bf16")
    assert bf16.model is model and bf16.precision == "bf16" and bf16.backend == fp32.backend
    exact, reduced = fp32(inputs()), bf16(inputs())
    assert torch.allclose(reduced, exact, atol=0.05) and not torch.equal(reduced, exact)
    used = {"torch": "torch", "onnxruntime": "torch", "openvino": "openvino"}[backend]
    assert bf16.backend_record["backend"] == used and bf16.backend_record["precision"] == "bf16"
