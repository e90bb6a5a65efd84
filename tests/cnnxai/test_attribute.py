"""The captum-style batch API: a batch gives its images' single-image explanations, in the inputs' dtype and
device, with shared forwards, no hook left behind and one clear error for a wrong input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

import cnnxai
from cnnxai.attribute import locate_layers, to_frames
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY, explain
from cnnxai.targets import TargetScore
from lime_ext import IMAGENET_MEAN, IMAGENET_STD, TorchClassifier
from tests.helpers import fast_options, make_tiny_cnn, small_photo


def batch_of(*frames: np.ndarray) -> torch.Tensor:
    """RGB uint8 frames -> ImageNet-normalised (B,3,H,W), as torchvision's ToTensor + Normalize make them."""
    classifier = TorchClassifier(make_tiny_cnn())
    return torch.stack([classifier.prepare_rgb(frame) for frame in frames])


FRAMES = (small_photo(), small_photo()[::-1].copy(), np.ascontiguousarray(small_photo()[:, ::-1] // 2))


def api_options(name: str) -> dict:
    """fast_options as the wrapper takes them: layers is an argument of its own."""
    options = fast_options(name)
    layers = options.pop("layers", None)
    return {"layers": layers, **options} if layers else options


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_image_of_a_batch_equals_its_single_image_explanation(name):
    model = make_tiny_cnn()
    inputs = batch_of(*FRAMES[:2])
    targets = [1, 3]
    maps = cnnxai.Explainer(model, name, **api_options(name)).attribute(inputs, targets, seed=4)
    assert maps.shape == (2, 1, 48, 48) and maps.dtype == torch.float32
    for i, frame in enumerate(FRAMES[:2]):
        single = explain(name, model, frame, targets[i], seed=4, **fast_options(name)).map
        scale = max(float(np.abs(single).max()), 1e-12)
        np.testing.assert_allclose(maps[i, 0].numpy(), single, atol=1e-4 * scale, rtol=0)


def count_forwards(model: nn.Module) -> list[int]:
    """Batch sizes of every forward of ``model`` (a hook the test removes)."""
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    model._test_handle = handle
    return sizes


def test_images_of_a_batch_share_forwards():
    model = make_tiny_cnn()
    inputs = batch_of(*FRAMES)
    sizes = count_forwards(model)
    try:
        cnnxai.LIME(model, num_samples=40, segmenter="slic", batch_size=16).attribute(inputs, 2, seed=0)
    finally:
        model._test_handle.remove()
    perturbation_forwards = [size for size in sizes if size > 1]
    assert sum(perturbation_forwards) == 3 * 40  # every sample once, and no more
    assert len(perturbation_forwards) == math.ceil(3 * 40 / 16) < 3 * math.ceil(40 / 16)


def test_targets_as_ints_lists_tensors_predicted_and_gradcam_objects_agree():
    model = make_tiny_cnn()
    inputs = batch_of(*FRAMES[:2])
    explainer = cnnxai.GradLIME(model, layers="4", num_samples=40, segmenter="slic")
    predicted = model(inputs).argmax(1)
    reference = explainer.attribute(inputs, predicted.tolist())
    for target in (None, predicted, [ClassifierOutputTarget(int(c)) for c in predicted]):
        torch.testing.assert_close(explainer.attribute(inputs, target), reference, rtol=0, atol=0)
    same = explainer.attribute(inputs, 2)
    torch.testing.assert_close(same, explainer.attribute(inputs, torch.tensor([2, 2])), rtol=0, atol=0)


def test_a_callable_target_is_explained_as_the_score_it_computes():
    model = make_tiny_cnn()
    inputs = batch_of(FRAMES[0])

    def margin(output: torch.Tensor) -> torch.Tensor:  # one image's logits (C,) -> a score
        return output[2] - output[1]

    maps = cnnxai.GradLIME(model, layers="4", num_samples=40, segmenter="slic").attribute(inputs, margin)
    task = TargetScore(model, margin, input_space="imagenet")
    single = explain("gradlime", task, FRAMES[0], 0, layers=["task.4"], num_samples=40, segmenter="slic").map
    np.testing.assert_allclose(maps[0, 0].numpy(), single, atol=1e-6 * np.abs(single).max())


def test_other_normalisations_are_converted_exactly():
    """A model trained on inputs normalised with mean 0.5, std 0.25 gives the explanations of the same model
    behind ImageNet's normalisation."""
    tiny = make_tiny_cnn()
    imagenet_mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    imagenet_std = torch.tensor(IMAGENET_STD)[:, None, None]

    class OwnNormalisation(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = tiny

        def forward(self, x):  # x = (pixels - 0.5) / 0.25
            return self.net(((x * 0.25 + 0.5) - imagenet_mean) / imagenet_std)

    own = OwnNormalisation().eval()
    frames = np.stack(FRAMES[:2])
    own_inputs = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    ours = cnnxai.GradLIME(
        own, layers="net.4", mean=(0.5,) * 3, std=(0.25,) * 3, num_samples=40, segmenter="slic"
    )
    reference = cnnxai.GradLIME(tiny, layers="4", num_samples=40, segmenter="slic")
    torch.testing.assert_close(ours.attribute(own_inputs, [0, 1]), reference.attribute(batch_of(*FRAMES[:2]), [0, 1]),
                               atol=1e-5, rtol=1e-4)  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_dtype_and_device_are_the_inputs(dtype):
    model = make_tiny_cnn()
    inputs = batch_of(FRAMES[0])
    reference = cnnxai.Explainer(model, "saliency").attribute(inputs, 1)
    maps = cnnxai.Explainer(model, "saliency").attribute(inputs.to(dtype), 1)
    assert maps.dtype == dtype and maps.device == inputs.device
    if dtype == torch.float64:  # float64 of an 8-bit image is the same image
        torch.testing.assert_close(maps.float(), reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_inputs_on_the_gpu_come_back_on_the_gpu():
    model = make_tiny_cnn().cuda()
    inputs = batch_of(FRAMES[0]).cuda()
    maps = cnnxai.GradLIME(model, layers="4", num_samples=40, segmenter="slic").attribute(inputs, 1)
    assert maps.device == inputs.device
    cpu = cnnxai.GradLIME(make_tiny_cnn(), layers="4", num_samples=40, segmenter="slic").attribute(
        inputs.cpu(), 1
    )
    torch.testing.assert_close(maps.cpu(), cpu, atol=1e-4, rtol=1e-3)


def test_no_hook_is_left_and_model_and_inputs_are_as_they_were():
    model = make_tiny_cnn().train()
    model[0].weight.requires_grad_(False)
    inputs = batch_of(*FRAMES[:2])
    before = inputs.clone()
    cnnxai.GradLIME(model, num_samples=40, segmenter="slic").attribute(inputs)  # layers located by hooks
    for module in model.modules():
        assert not (module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)
        assert not getattr(module, "_backward_pre_hooks", None)
    assert model.training and not model[0].weight.requires_grad and model[2].weight.requires_grad
    torch.testing.assert_close(inputs, before, rtol=0, atol=0)


def test_layers_default_to_the_models_own():
    from torchvision.models import resnet18, vgg11

    assert locate_layers(make_tiny_cnn(), torch.zeros(1, 3, 48, 48)) == ("4",)
    assert locate_layers(resnet18(), torch.zeros(1, 3, 64, 64)) == ("layer4",)
    assert locate_layers(vgg11(), torch.zeros(1, 3, 64, 64)) == ("features",)
    tagged = make_tiny_cnn()
    tagged.default_layers = ("2",)  # what cnnxai.zoo.load_model sets
    assert locate_layers(tagged, torch.zeros(1, 3, 48, 48)) == ("2",)


@pytest.mark.parametrize(
    ("inputs", "target", "message"),
    [
        (batch_of(FRAMES[0])[0], 0, "add a batch dimension"),
        (torch.zeros(2, 1, 48, 48), 0, "(B,3,H,W)"),
        (torch.zeros(1, 3, 48, 48, dtype=torch.uint8), 0, "float images"),
        (torch.full((1, 3, 48, 48), 5.0), 0, "pass the mean and std"),
        (batch_of(*FRAMES[:2]), [0, 1, 2], "3 targets for a batch of 2"),
        (batch_of(*FRAMES[:2]), torch.zeros(2, 2), "one class per image"),
        (batch_of(FRAMES[0]), "cat", "target must be an int"),
        (batch_of(FRAMES[0]), [0.5], "not a class index"),
    ],
)
def test_wrong_inputs_give_one_clear_error(inputs, target, message):
    explainer = cnnxai.LIME(make_tiny_cnn(), num_samples=40, segmenter="slic")
    with pytest.raises(UserInputError, match=None) as error:
        explainer.attribute(inputs, target)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unknown_options_are_refused_when_the_explainer_is_made():
    with pytest.raises(UserInputError, match="num_sample"):
        cnnxai.GradLIME(make_tiny_cnn(), num_sample=10)
    with pytest.raises(UserInputError, match="takes no layers"):
        cnnxai.Explainer(make_tiny_cnn(), "saliency", layers="4")


def test_inputs_off_the_8_bit_grid_are_rounded_with_a_warning():
    inputs = batch_of(FRAMES[0])
    frames = to_frames(inputs, IMAGENET_MEAN, IMAGENET_STD)
    np.testing.assert_array_equal(frames[0], FRAMES[0])  # ToTensor's images come back exactly
    with pytest.warns(UserWarning, match="8-bit grid"):
        shifted = to_frames(inputs + 0.3 / 255 / 0.229, IMAGENET_MEAN, IMAGENET_STD)
    assert np.abs(shifted[0].astype(int) - FRAMES[0]).max() <= 1
    with pytest.warns(UserWarning, match="clamped"):  # noise of a robustness metric past black
        noisy = to_frames(inputs - 0.2, IMAGENET_MEAN, IMAGENET_STD)
    assert noisy.min() == 0


def test_quantus_metric_runs_with_our_explain_func():
    import quantus

    model = make_tiny_cnn()
    x = batch_of(*FRAMES[:2]).numpy()
    y = np.array([1, 3])
    kwargs = {"method": "gradlime", "layers": "4", "num_samples": 40, "segmenter": "slic"}
    attributions = cnnxai.quantus_explain_func(model, x, y, **kwargs)
    assert attributions.shape == (2, 1, 48, 48) and attributions.dtype == np.float32
    metric = quantus.MaxSensitivity(nr_samples=2, lower_bound=0.01, disable_warnings=True)
    with pytest.warns(UserWarning, match="8-bit grid"):  # its noise, rounded away where below 0.5/255
        scores = metric(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=cnnxai.quantus_explain_func,
                        explain_func_kwargs=kwargs, device="cpu")  # fmt: skip
    assert len(scores) == 2 and all(np.isfinite(scores))


def test_explain_and_explain_image_take_classifier_target_objects(photo):
    from cnnxai.explainers import explain_image

    model = make_tiny_cnn()
    by_index = explain("gradcam", model, photo, 2, layers=["4"]).map
    np.testing.assert_array_equal(
        explain("gradcam", model, photo, ClassifierOutputTarget(2), layers=["4"]).map, by_index
    )
    result = explain_image(
        "gradlime", model, photo, ClassifierOutputTarget(3), layers=["4"], num_samples=40, segmenter="slic"
    )
    assert result.target == 3
    with pytest.raises(UserInputError, match="not a class index"):
        explain("gradcam", model, photo, "cat", layers=["4"])
