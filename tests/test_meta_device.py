"""The hot paths run on the device of the model, checked without a GPU: the model and its inputs go on torch's
"meta" device, where a tensor made on the CPU raises as it would beside a CUDA tensor ("Tensor on device cpu is
not on the expected device meta!"), and reading a value back (``.item()``, ``bool()``, ``.cpu()``) raises too. A
path that passes here makes no tensor on the wrong device and does not wait for the device. Where a path must
read back once (the predictions at the end of a loop), the test says so."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cam_ext.methods import CAM_METHODS
from cnnxai.attribute import locate_layers
from cnnxai.metrics.perturbation import FeatureView, replace
from cnnxai.targets import ClassifierOutputTarget, DetectionBoxTarget, SegmentationTarget, TargetScore
from cnnxai.zoo import Renormalised
from lime_ext import PerturbationEngine, TorchClassifier, forward_batches, module_device
from tests.helpers import make_tiny_cnn

META = torch.device("meta")


def on_meta(model: nn.Module) -> nn.Module:
    return model.to(META)


class TinySegmenter(nn.Module):
    """(B,3,H,W) -> logits (B,3,H,W)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class TinyDetector(nn.Module):
    """(B,3,H,W) in [0,1] -> one torchvision-style detection dict per image, three boxes each."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.boxes = nn.Parameter(
            torch.tensor([[0.0, 0.0, 8.0, 8.0], [4.0, 4.0, 12.0, 12.0], [2.0, 2.0, 9.0, 9.0]])
        )
        self.register_buffer("labels", torch.tensor([0, 1, 1]))

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        scores = torch.sigmoid(self.conv(x).mean(dim=(2, 3)))
        return [{"boxes": self.boxes, "scores": s, "labels": self.labels} for s in scores]


def test_meta_tensors_behave_as_cuda_ones_do():
    """The premise of this file: mixing devices and reading values back both raise on meta."""
    with pytest.raises(RuntimeError, match="device"):
        torch.ones(3, device=META) + torch.ones(3)
    with pytest.raises(RuntimeError):
        torch.ones(3, device=META).sum().item()


def test_the_perturbation_engine_and_the_classifier_stay_on_the_device():
    model = on_meta(make_tiny_cnn())
    classifier = TorchClassifier(model, backend="torch")
    assert classifier.device == META
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    segments = (np.arange(32)[:, None] // 8 * 4 + np.arange(32)[None] // 8).astype(np.int64)
    engine = PerturbationEngine(image, segments, classifier, hide_color="mean", batch_size=4)
    masks = torch.ones((4, 16), dtype=torch.uint8, device=META)
    batch = engine.perturb(masks)
    assert batch.device == META and batch.shape == (4, 3, 32, 32)
    with classifier.session():
        out = classifier.forward_prepared(batch)
    assert out.device == META and out.shape == (4, 4)
    # The one loop: every batch built and run on the device; the caller reads the outputs back once at the end
    # (PerturbationEngine.predict's single copy to the host, which meta cannot do).
    outputs = [o for _, _, o in forward_batches(classifier, 10, lambda a, b: batch[: b - a], 4)]
    assert [o.device for o in outputs] == [META] * 3


@pytest.mark.parametrize("kind", ["classifier", "segmentation", "detection"])
def test_every_target_scores_on_the_device(kind):
    x = torch.zeros(2, 3, 16, 16, device=META)
    if kind == "classifier":
        model, target, space = make_tiny_cnn(), ClassifierOutputTarget(3), "imagenet"
    elif kind == "segmentation":
        mask = np.zeros((16, 16), bool)
        mask[4:9, 4:9] = True
        model, target, space = TinySegmenter(), SegmentationTarget(1, mask), "imagenet"
    else:
        model, target, space = TinyDetector(), DetectionBoxTarget((0.0, 0.0, 8.0, 8.0), 1), "unit"
    wrapped = TargetScore(on_meta(model), target, input_space=space)
    assert wrapped.mean.device == META  # its buffers are made where the task model is
    scores = wrapped(x)
    assert scores.device == META and scores.shape == (2, 1)


def test_a_detection_target_reads_nothing_back_when_no_box_has_its_class():
    detection = TinyDetector().to(META)(torch.zeros(1, 3, 8, 8, device=META))[0]
    score = DetectionBoxTarget((0.0, 0.0, 8.0, 8.0), label=7)(detection)
    assert score.device == META and score.shape == ()


def test_renormalised_and_the_layer_finder_work_where_the_model_is():
    model = on_meta(make_tiny_cnn())
    wrapped = Renormalised(model, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert wrapped.scale.device == META
    x = torch.zeros(2, 3, 32, 32, device=META)
    assert wrapped(x).device == META
    assert locate_layers(model, x[:1]) == ("4",)  # one hooked forward: the last spatial map (the ReLU)
    assert module_device(wrapped) == META


@pytest.mark.parametrize("name", [n for n, m in CAM_METHODS.items() if m.formula is not None])
def test_every_cam_formula_runs_on_the_device(name):
    acts = torch.zeros(2, 4, 5, 5, device=META)
    grads = torch.zeros(2, 4, 5, 5, device=META)
    formula = CAM_METHODS[name].formula
    maps = formula(acts) if CAM_METHODS[name].kind == "activation" else formula(acts, grads)
    assert maps.device == META and maps.shape == (2, 5, 5)


def test_the_metric_builders_make_batches_on_the_device():
    x = torch.zeros(3, 8, 8, device=META)
    view = FeatureView(x, "pixel")
    masks = torch.zeros(4, view.num_features, dtype=torch.bool, device=META)
    batch = replace(view.values, masks, torch.zeros((), device=META))
    assert batch.device == META and batch.shape == (4, 3, 64)
