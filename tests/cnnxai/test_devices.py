"""The CUDA path's decisions, tested without a GPU (CUDA's answers are monkeypatched, so these tests run the same on
a GPU machine): device refusals, the batch size chosen once per process from total memory, what a run does after
a CUDA error, and seeding that leaves every other generator as it was."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import lime_ext.engine as engine
from cnnxai.devices import recover_from, resolve_device
from cnnxai.errors import UserInputError
from cnnxai.system import system_record
from lime_ext import auto_batch_size, chosen_batch_sizes, seeded_torch, set_gpu_share

GIB = 1024**3


@pytest.fixture
def fake_gpus(monkeypatch):
    """Two CUDA devices of 80 GiB whose free memory is whatever ``state['free']`` says."""
    state = {"free": 70 * GIB}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (state["free"], 80 * GIB))
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda device=None: SimpleNamespace(total_memory=80 * GIB)
    )
    monkeypatch.setattr(engine, "_chosen", {})
    monkeypatch.setattr(engine, "_gpu_share", 1.0)
    return state


def test_cuda_is_refused_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserInputError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


def test_a_gpu_index_past_the_last_is_refused(fake_gpus):
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UserInputError, match="2 CUDA device"):
        resolve_device("cuda:2")
    with pytest.raises(UserInputError, match="unknown device"):
        resolve_device("gpu")


def test_the_batch_size_is_chosen_once_from_total_memory(fake_gpus):
    first = auto_batch_size("cuda", 224, 224)
    fake_gpus["free"] = 3 * GIB  # the caching allocator now holds most of the device
    assert auto_batch_size("cuda:0", 224, 224) == first == 256  # 40 GiB / 120 MB per image, as a power of two
    assert auto_batch_size("cuda", 448, 448) == 64  # for the real input size
    assert chosen_batch_sizes() == {"cuda:0 224x224": 256, "cuda:0 448x448": 64}
    assert system_record()["auto_batch_sizes"] == chosen_batch_sizes()  # what every manifest records


def test_workers_sharing_a_gpu_take_their_share(fake_gpus):
    set_gpu_share(0.25)
    assert auto_batch_size("cuda", 224, 224) == 64
    with pytest.raises(ValueError, match="share"):
        set_gpu_share(0)


def test_the_cpu_batch_is_fixed():
    assert auto_batch_size("cpu", 224, 224) == engine.CPU_BATCH_SIZE


def test_a_ray_run_refuses_a_gpu_index():
    from cnnxai.distributed import RaySettings, WorkerPool

    pytest.importorskip("ray")
    with pytest.raises(UserInputError, match="--device cuda:1 with --ray"):
        WorkerPool(RaySettings(), "cuda:1")


def test_a_run_stops_on_a_broken_cuda_context_and_goes_on_after_running_out_of_memory(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    assert recover_from(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert emptied == [True]
    assert recover_from(ValueError("segments do not match"))
    assert recover_from(RuntimeError("the explainer needs a Conv2d layer"))
    assert not recover_from(RuntimeError("CUDA error: device-side assert triggered"))
    assert not recover_from(RuntimeError("CUDA error: an illegal memory access was encountered"))
    if hasattr(torch, "AcceleratorError"):
        assert not recover_from(torch.AcceleratorError("anything"))


def test_a_benchmark_stops_at_a_sticky_cuda_error(monkeypatch, tmp_path, tiny_cnn):
    """After a device-side assert every later unit would fail too: the run raises (its rows so far are kept and
    it resumes) instead of writing NaN rows for every image left."""
    from cnnxai.benchmark import runner

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(runner, "explain", broken)
    settings = runner.BenchmarkSettings("MyComplexity.py", ("gradcam",), ("Sparseness",), {"Sparseness": {}})
    scorer = runner.GroupScorer(settings, tiny_cnn, batch_size=4)
    frame = np.zeros((32, 32, 3), np.uint8)
    image = SimpleNamespace(key="a", true_class=0)
    item = runner.PreparedImage(image, frame=frame)
    item.metrics = SimpleNamespace(target=0)
    item.session = None
    group = SimpleNamespace(images=[image])
    with pytest.raises(RuntimeError, match="device-side assert"):
        scorer._unit(group, "gradcam", {"a": item})


def test_seeding_touches_no_cuda_generator_on_the_cpu(monkeypatch):
    """torch.manual_seed would reseed every CUDA generator (or queue it for when CUDA starts): captum's draws on a
    CPU model must not, and the caller's CPU generator comes back as it was."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a CUDA generator was reseeded")

    monkeypatch.setattr(torch.cuda, "manual_seed_all", forbidden)
    monkeypatch.setattr(torch.cuda, "manual_seed", forbidden)
    before = torch.random.get_rng_state()
    with seeded_torch(3):
        first = torch.rand(4)
    with seeded_torch(3, "cpu"):
        again = torch.rand(4)
    assert torch.equal(first, again)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_gradient_shap_seeds_only_the_generators_it_uses(monkeypatch, tiny_cnn):
    from cnnxai.explainers import explain

    monkeypatch.setattr(
        torch.cuda, "manual_seed_all", lambda *a: (_ for _ in ()).throw(AssertionError("CUDA"))
    )
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    first = explain("gradient_shap", tiny_cnn, image, 1, seed=5, samples=4).map
    assert np.array_equal(first, explain("gradient_shap", tiny_cnn, image, 1, seed=5, samples=4).map)


def test_a_prior_may_be_a_tensor(tiny_cnn):
    from lime_ext import CamLimeExplainer, LimeSettings, TorchClassifier

    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    explainer = CamLimeExplainer(TorchClassifier(tiny_cnn), LimeSettings(num_samples=20, segmenter="slic"))
    neighbourhood = explainer.sample(image, 0)
    prior = np.linspace(0.2, 1.0, neighbourhood.num_segments)
    as_array = neighbourhood.fit(labels=[0], prior=prior).labels[0].attributions
    as_tensor = neighbourhood.fit(labels=[0], prior=torch.from_numpy(prior)).labels[0].attributions
    assert np.array_equal(as_array, as_tensor)


def test_normlime_keeps_reference_features_on_the_host(tiny_cnn):
    from cnnxai.explainers.normlime import first_conv_features

    features = first_conv_features(tiny_cnn, torch.zeros(1, 3, 16, 16))
    assert isinstance(features, np.ndarray) and features.shape == (8, 16, 16)
