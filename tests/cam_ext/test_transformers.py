"""CAMs of vision transformers: the token grid found from the model, maps equal to pytorch-grad-cam's with the
``reshape_transform`` its tutorial writes by hand, and the methods that cannot apply refused with the reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

from cam_ext import cam_refusal, compute_cams, locate_layers, token_layout
from cam_ext.compute import TRANSFORMER_REFUSALS
from tests.cam_ext.test_compute import grad_cam_reference


def tiny_vit(image_size: int = 32, patch_size: int = 8, seed: int = 0) -> VisionTransformer:
    torch.manual_seed(seed)
    model = VisionTransformer(image_size=image_size, patch_size=patch_size, num_layers=2, num_heads=2,
                              hidden_dim=16, mlp_dim=32, num_classes=5)  # fmt: skip
    torch.nn.init.normal_(
        model.heads.head.weight, std=0.5
    )  # torchvision starts the head at zero: no gradients
    return model.eval()


def tiny_swin(seed: int = 0) -> SwinTransformer:
    torch.manual_seed(seed)
    return SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=[2, 2],
                           num_classes=5).eval()  # fmt: skip


def vit_tutorial_reshape(tensor, height=4, width=4):
    """pytorch-grad-cam's ViT tutorial: drop the class token, (B,N,C) -> (B,C,h,w)."""
    result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
    return result.transpose(2, 3).transpose(1, 2)


def swin_reshape(tensor):
    """torchvision's Swin stages output (B,h,w,C): channels first for grad-cam."""
    return tensor.transpose(2, 3).transpose(1, 2)


def grad_cam_maps(method, model, layer_name, reshape, x, targets) -> np.ndarray:
    """pytorch-grad-cam's raw per-layer map with ``reshape`` as its reshape_transform."""
    return grad_cam_reference(method, model, dict(model.named_modules())[layer_name], x, targets, reshape)


def test_the_token_grid_and_default_layer_come_from_the_model():
    vit = tiny_vit(image_size=48, patch_size=8)
    layout = token_layout(vit)
    assert (layout.kind, layout.grid, layout.prefix) == ("tokens", (6, 6), 1)
    assert locate_layers(vit, torch.zeros(1, 3, 48, 48)) == ("encoder.layers.encoder_layer_1.ln_1",)
    assert locate_layers(tiny_swin(), torch.zeros(1, 3, 32, 32)) == ("norm",)
    wrapped = torch.nn.Sequential(tiny_vit())  # a wrapper names the layer by its own path
    assert token_layout(wrapped).default_layer == "0.encoder.layers.encoder_layer_1.ln_1"
    tokens = torch.arange(2 * 17 * 3, dtype=torch.float32).reshape(2, 17, 3)
    assert torch.equal(token_layout(tiny_vit())(tokens), vit_tutorial_reshape(tokens))
    with pytest.raises(ValueError, match="prefix tokens"):
        layout(tokens)  # 16 patches are not a 6x6 grid


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam"])
@pytest.mark.parametrize("family", ["vit", "swin"])
def test_transformer_cams_equal_pytorch_grad_cam_with_its_reshape_transform(family, method):
    model, reshape = (tiny_vit(), vit_tutorial_reshape) if family == "vit" else (tiny_swin(), swin_reshape)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    layer = locate_layers(model, x[:1])[0]
    ours = compute_cams(model, x, [layer], method=method, targets=[1, 3]).maps[layer].numpy()
    reference = grad_cam_maps(method, model, layer, reshape, x, [1, 3])
    assert ours.shape == (2, 4, 4) and ours.max() > 0
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", sorted(TRANSFORMER_REFUSALS))
def test_methods_that_need_a_cnn_are_refused_with_the_reason(method):
    model = tiny_vit()
    reason = cam_refusal(method, model)
    assert (
        "does not apply to a torchvision ViT" in reason
        and cam_refusal(method, torch.nn.Conv2d(3, 3, 1)) is None
    )
    with pytest.raises(ValueError, match="does not apply"):
        compute_cams(
            model, torch.zeros(1, 3, 32, 32), [locate_layers(model, torch.zeros(1, 3, 32, 32))[0]], method
        )


@pytest.mark.parametrize("family", ["vit", "swin"])
def test_timm_transformers_equal_pytorch_grad_cam(family):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    if family == "vit":
        model = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, depth=1, img_size=32,
                                  num_classes=5)  # fmt: skip

        def reshape(tensor):  # the tutorial's, with DeiT's two prefix tokens (class, distillation)
            return tensor[:, 2:, :].reshape(tensor.size(0), 2, 2, tensor.size(2)).permute(0, 3, 1, 2)
    else:
        model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, depths=(1, 1), num_heads=(1, 2),
                                  embed_dim=16, window_size=2, img_size=32, num_classes=5)  # fmt: skip
        reshape = swin_reshape
    model.eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    layer = locate_layers(model, x[:1])[0]
    ours = compute_cams(model, x, [layer], targets=[0, 4]).maps[layer].numpy()
    np.testing.assert_allclose(
        ours, grad_cam_maps("gradcam", model, layer, reshape, x, [0, 4]), rtol=1e-4, atol=1e-6
    )
    assert ours.max() > 0
