"""cam_ext: Grad-CAM against the formula, every method against pytorch-grad-cam, hooks and model state."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_grad_cam as pgc
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

import cam_ext
from cam_ext import CAM_METHODS, LayerNotFoundError, compute_cams, fuse_layer_maps
from tests.helpers import make_tiny_cnn


def hand_built_model() -> nn.Module:
    """1x1 conv (3 -> 2 channels) -> global mean -> linear (2 -> 3), with hand-set weights."""
    conv = nn.Conv2d(3, 2, 1)
    fc = nn.Linear(2, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])[:, :, None, None])
        conv.bias.copy_(torch.tensor([0.1, -0.2]))
        fc.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.5], [-1.0, 3.0]]))
        fc.bias.zero_()
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc).eval()


def test_gradcam_of_hand_built_model_equals_formula():
    model = hand_built_model()
    x = torch.randn(1, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    result = compute_cams(model, x, "0", method="gradcam", targets=2)
    # A_k = conv(x); y_c = sum_k V_ck mean(A_k) => dy_c/dA_k = V_ck / (h w); Grad-CAM weight alpha_k = V_ck / (h w)
    acts = model[0](x).detach()[0].numpy()
    alpha = model[3].weight.detach().numpy()[2] / (5 * 6)
    expected = np.maximum(np.tensordot(alpha, acts, axes=1), 0)
    np.testing.assert_allclose(result.maps["0"][0].numpy(), expected, rtol=1e-5, atol=1e-7)
    assert int(result.targets[0]) == 2


def grad_cam_reference(
    method: str,
    model: nn.Module,
    layer: nn.Module,
    x: torch.Tensor,
    targets: list[int],
    reshape_transform=None,
) -> np.ndarray:
    """pytorch-grad-cam's own raw per-layer map, ReLU(get_cam_image), before its min-max and resize; with its
    ``reshape_transform`` for token layouts."""
    cls = getattr(pgc, CAM_METHODS[method].gradcam_class)
    cam = cls(model, [layer], reshape_transform=reshape_transform)
    try:
        out = cam.activations_and_grads(x)
        score = sum(out[i, t] for i, t in enumerate(targets))
        model.zero_grad()
        score.backward()
        acts = cam.activations_and_grads.activations[0].numpy()
        grads = (
            cam.activations_and_grads.gradients[0].numpy() if cam.activations_and_grads.gradients else None
        )
        raw = cam.get_cam_image(x, layer, [ClassifierOutputTarget(t) for t in targets], acts, grads, False)
    finally:
        cam.activations_and_grads.release()
    return np.maximum(raw, 0)


LAYER_METHODS = [name for name, spec in CAM_METHODS.items() if spec.kind != "fullgrad"]


@pytest.mark.parametrize("method", LAYER_METHODS)
def test_raw_maps_equal_pytorch_grad_cam(method):
    model = make_tiny_cnn()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ours = compute_cams(model, x, ["4", "1"], method=method, targets=[1, 3])
    for name in ("4", "1"):
        got = ours.maps[name].numpy()
        if method in ("eigencam", "eigengradcam"):
            # grad-cam leaves the SVD sign arbitrary; ours flips it so the dominant lobe is positive
            reference = grad_cam_reference_projection(method, model, name, x, [1, 3])
            np.testing.assert_allclose(got, reference, rtol=1e-4, atol=1e-5)
        else:
            reference = grad_cam_reference(method, model, dict(model.named_modules())[name], x, [1, 3])
            np.testing.assert_allclose(got, reference, rtol=1e-4, atol=1e-6)


def grad_cam_reference_projection(method, model, name, x, targets):
    """grad-cam's projection with the sign rule applied (|min| > |max| -> negate), then ReLU."""
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

    layer = dict(model.named_modules())[name]
    cam = pgc.EigenGradCAM(model, [layer])
    try:
        out = cam.activations_and_grads(x)
        model.zero_grad()
        sum(out[i, t] for i, t in enumerate(targets)).backward()
        acts = cam.activations_and_grads.activations[0].numpy()
        grads = cam.activations_and_grads.gradients[0].numpy()
    finally:
        cam.activations_and_grads.release()
    source = acts if method == "eigencam" else grads * acts
    return np.maximum(get_2d_projection_with_sign_correction(source), 0)


def test_fullgrad_equals_pytorch_grad_cam_after_normalisation():
    model = make_tiny_cnn()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    ours = compute_cams(model, x, [], method="fullgrad", targets=[0, 2]).maps[cam_ext.FULLGRAD_KEY]
    cam = pgc.FullGrad(model, [])
    try:
        reference = cam(x, [ClassifierOutputTarget(0), ClassifierOutputTarget(2)])
    finally:
        cam.activations_and_grads.release()
    np.testing.assert_allclose(cam_ext.minmax_normalise(ours).numpy(), reference, atol=2e-5)


@pytest.mark.parametrize("method", ["gradcam", "layercam", "scorecam", "eigencam"])
def test_multi_layer_maps_equal_single_layer_calls(method):
    model = make_tiny_cnn()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    both = compute_cams(model, x, ["1", "4"], method=method)
    for name in ("1", "4"):
        single = compute_cams(model, x, name, method=method)
        torch.testing.assert_close(both.maps[name], single.maps[name], rtol=1e-5, atol=1e-7)


def test_gradient_methods_use_one_forward_and_one_backward():
    model = make_tiny_cnn()
    calls = {"forward": 0}
    handle = model.register_forward_hook(lambda *args: calls.__setitem__("forward", calls["forward"] + 1))
    try:
        compute_cams(model, torch.randn(1, 3, 16, 16), ["1", "2", "4"], method="gradcam")
    finally:
        handle.remove()
    assert calls["forward"] == 2  # one to pick the target under no_grad, one forward+backward for all layers


def test_aug_smooth_is_the_mean_over_flips_and_brightness():
    model = make_tiny_cnn()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    target = int(model(x).argmax())
    smooth = compute_cams(model, x, "4", targets=target, aug_smooth=True).maps["4"]
    manual = []
    for flip in (False, True):
        for factor in (0.9, 1.0, 1.1):
            xi = (x.flip(-1) if flip else x) * factor
            m = compute_cams(model, xi, "4", targets=target).maps["4"]
            manual.append(m.flip(-1) if flip else m)
    torch.testing.assert_close(smooth, torch.stack(manual).mean(0), rtol=1e-5, atol=1e-7)


def test_inplace_relu_after_layer_does_not_change_the_recorded_activations():
    model = make_tiny_cnn()  # layer "3" (BatchNorm) is followed by ReLU(inplace=True)
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    ours = compute_cams(model, x, "3", method="layercam", targets=0).maps["3"]
    acts = model[:4](x)
    grads = torch.autograd.grad(model[4:](acts.clone())[0, 0], acts)[0]
    expected = torch.relu((torch.relu(grads) * acts).sum(1)).detach()
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-7)
    assert (acts < 0).any()  # pre-ReLU activations were used


def test_hooks_removed_and_state_restored_when_the_model_raises():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model = make_tiny_cnn()
    model.append(Boom())
    model.train()
    model[0].weight.requires_grad_(False)
    with pytest.raises(RuntimeError, match="boom"):
        compute_cams(model, torch.randn(1, 3, 8, 8), ["1", "4"])
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert all(m.training for m in model.modules())
    assert model[0].weight.requires_grad is False and model[2].weight.requires_grad is True


@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_no_side_effects_on_input_model_or_grads(method):
    model = make_tiny_cnn()
    model[5].train()  # mixed modes must come back as they were
    x = torch.randn(1, 3, 16, 16)
    x_before = x.clone()
    flags = [p.requires_grad for p in model.parameters()]
    compute_cams(model, x, ["4"], method=method)
    torch.testing.assert_close(x, x_before, rtol=0, atol=0)
    assert not x.requires_grad and x.grad is None
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert model[5].training and not model[0].training
    assert all(not m._forward_hooks for m in model.modules())


def test_frozen_model_still_gets_gradients():
    model = make_tiny_cnn().requires_grad_(False)
    result = compute_cams(model, torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(6)), "4")
    assert result.maps["4"].abs().sum() > 0
    assert all(not p.requires_grad for p in model.parameters())


def test_unknown_layer_lists_close_matches():
    model = make_tiny_cnn()
    nested = nn.Sequential()
    nested.add_module("layer4", nn.Sequential(model))
    with pytest.raises(LayerNotFoundError, match=r"close matches: layer4"):
        compute_cams(nested, torch.randn(1, 3, 8, 8), "layer5")
    assert cam_ext.resolve_layer(nested, "model.layer4[0]")[0] == "layer4.0"


def test_targets_out_of_range_and_unknown_method_are_errors():
    model = make_tiny_cnn()
    with pytest.raises(ValueError, match="out of range"):
        compute_cams(model, torch.randn(1, 3, 8, 8), "4", targets=7)
    with pytest.raises(ValueError, match="unknown CAM method"):
        compute_cams(model, torch.randn(1, 3, 8, 8), "4", method="gradcam3")


def test_maps_stay_on_the_model_device_and_fuse():
    model = make_tiny_cnn()
    result = compute_cams(model, torch.randn(1, 3, 16, 16), ["1", "4"])
    assert all(m.device == next(model.parameters()).device for m in result.maps.values())
    fused = result.fused("mean")
    assert fused.shape == (1, 16, 16) and float(fused.min()) >= 0 and float(fused.max()) <= 1


def test_camlime_fusion_rule():
    coarse = torch.tensor([[[0.0, 2.0], [2.0, 4.0]]])
    fine = torch.arange(16.0).reshape(1, 4, 4)
    up = torch.nn.functional.interpolate(coarse[None], size=(4, 4), mode="bilinear", align_corners=False)[0]
    norm = lambda m: (m - m.min()) / (m.max() - m.min() + 1e-7)  # noqa: E731
    expected_mean = norm((norm(up) + norm(fine)) / 2)
    expected_max = norm(torch.maximum(norm(up), norm(fine)))
    torch.testing.assert_close(fuse_layer_maps([coarse, fine], (4, 4), "mean"), expected_mean)
    torch.testing.assert_close(fuse_layer_maps([coarse, fine], (4, 4), "max"), expected_max)


def test_ablationcam_on_a_module_called_twice_ablates_only_its_last_call():
    """EfficientNet-Lite0's default layer is one ReLU6 module run after the stem and after the head: ablating a
    channel must replace the head's call only (replacing both crashed on the stem's shape)."""

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, stride=2, padding=1)
            self.act, self.fc = nn.ReLU(), nn.Linear(6, 3)

        def forward(self, x):
            return self.fc(self.act(self.conv2(self.act(self.conv1(x)))).mean(dim=(2, 3)))

    class Separate(Shared):  # the same weights, a module of its own for the second activation
        def __init__(self):
            super().__init__()
            self.act2 = nn.ReLU()

        def forward(self, x):
            return self.fc(self.act2(self.conv2(self.act(self.conv1(x)))).mean(dim=(2, 3)))

    torch.manual_seed(0)
    shared, separate = Shared().eval(), Separate().eval()
    separate.load_state_dict(shared.state_dict(), strict=False)
    x = torch.randn(1, 3, 16, 16)
    ours = compute_cams(shared, x, ["act"], method="ablationcam", targets=1).maps["act"]
    expected = compute_cams(separate, x, ["act2"], method="ablationcam", targets=1).maps["act2"]
    assert ours.shape == (1, 8, 8) and float(expected.abs().sum()) > 0
    torch.testing.assert_close(ours, expected)
