"""torchvision's detection and segmentation models, with random weights on a 64x64 image: loaded through the task
zoo from a weights file, a target chosen on their own prediction, and GradLIME run end to end through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnxai.errors import UserInputError
from cnnxai.explainers import explain_image
from cnnxai.targets import TargetScore
from cnnxai.tasks.explain import predict, select_detection, select_region
from cnnxai.tasks.models import TASK_MODELS, task_model_spec
from tests.helpers import small_photo

# Small internal resizing, and every detection kept (random weights score ~1/91), so a box can be chosen.
SMALL = {
    "fasterrcnn_resnet50_fpn": {"min_size": 64, "max_size": 64, "box_score_thresh": 0.0},
    "retinanet_resnet50_fpn": {"min_size": 64, "max_size": 64, "score_thresh": 0.0},
    "fcos_resnet50_fpn": {"min_size": 64, "max_size": 64, "score_thresh": 0.0},
    "ssdlite320_mobilenet_v3_large": {"score_thresh": 0.0},
    "fcn_resnet50": {"aux_loss": True},
    "deeplabv3_resnet50": {"aux_loss": True},
    "lraspp_mobilenet_v3_large": {},
}


def random_model(name: str):
    import torchvision.models as tvm

    torch.manual_seed(0)
    return tvm.get_model(name, weights=None, weights_backbone=None, **SMALL[name]).eval()


def hooks_of(model) -> int:
    return sum(
        len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules()
    )


@pytest.mark.parametrize("name", list(SMALL))
def test_gradlime_runs_end_to_end_on_a_random_torchvision_task_model(name):
    spec = TASK_MODELS[name]
    model = random_model(name)
    image = small_photo(64)
    output = predict(model, image, spec.input_space)
    names = spec.class_names()
    if spec.task == "detection":
        selection = select_detection(output, names, image.shape[:2], threshold=0.0)
    else:
        selection = select_region(output, names)
    wrapped = TargetScore(model, selection.target, spec.input_space)
    flags = [p.requires_grad for p in model.parameters()]
    result = explain_image("gradlime", wrapped, image, 0, seed=0, num_samples=12, segmenter="slic",
                           layers=["task." + layer for layer in spec.layers], batch_size=6)  # fmt: skip
    attribution = result.ours.attribution_map(0)
    assert attribution.shape == (64, 64) and np.isfinite(attribution).all()
    assert float(result.probabilities[0]) == pytest.approx(selection.score, rel=1e-4, abs=1e-6)
    assert not model.training and hooks_of(model) == 0
    assert [p.requires_grad for p in model.parameters()] == flags


def test_a_task_model_loads_from_a_weights_file_and_refuses_one_that_does_not_fit(tmp_path):
    import torchvision.models as tvm

    spec = task_model_spec("segmentation", "lraspp_mobilenet_v3_large")
    torch.manual_seed(0)
    reference = tvm.get_model(spec.name, weights=None, weights_backbone=None)
    path = tmp_path / "lraspp.pth"
    torch.save(reference.state_dict(), path)
    model, info = spec.load(str(path), torch.device("cpu"))
    assert info["weights_file"] == str(path) and len(info["weights_sha256"]) == 64
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x)["out"], reference.eval()(x)["out"])
    wrong = tmp_path / "wrong.pth"
    torch.save(tvm.resnet18(weights=None).state_dict(), wrong)
    with pytest.raises(UserInputError, match="does not fit lraspp_mobilenet_v3_large"):
        spec.load(str(wrong), torch.device("cpu"))
    with pytest.raises(UserInputError, match="no such file"):
        spec.load(str(tmp_path / "missing.pth"), torch.device("cpu"))


def test_a_model_of_another_task_is_refused():
    with pytest.raises(UserInputError, match="not a detection model"):
        task_model_spec("detection", "fcn_resnet50")
