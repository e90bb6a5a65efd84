"""The embedded face detector: MTCNN's cascade (as facenet-pytorch's, value for value) and P-Net for Grad-CAM."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from cnnxai.errors import UserInputError
from cnnxai.tasks.face import (
    FACE_CAM_LAYER,
    MTCNNFaces,
    PNetFaces,
    face_scale,
    load_face_detector,
    portrait,
)

pytest.importorskip("facenet_pytorch")

# The astronaut's face as MTCNN finds it in the 512x512 portrait (x1, y1, x2, y2), to a few pixels.
FACE_BOX = (181.0, 62.0, 268.0, 172.0)


def as_batch(*images: np.ndarray) -> torch.Tensor:
    """RGB uint8 images (H,W,3) -> (B,3,H,W) float in [0,1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture(scope="module")
def detector() -> MTCNNFaces:
    return load_face_detector()[0]


@pytest.fixture(scope="module")
def small() -> np.ndarray:
    """The portrait at 256x256, uint8 (the cascade is four times cheaper than at 512)."""
    image = torch.from_numpy(portrait()).permute(2, 0, 1)[None].float()
    small = torch.nn.functional.interpolate(image, size=(256, 256), mode="area")
    return small[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


@pytest.fixture(scope="module")
def found(detector: MTCNNFaces) -> dict[str, torch.Tensor]:
    return detector(as_batch(portrait()))[0]


def module_state(module: torch.nn.Module) -> list:
    """Everything a call must leave as it was: train/eval flags, requires_grad and hooks of every part."""
    state = []
    for name, part in module.named_modules():
        hooks = (part._forward_hooks, part._forward_pre_hooks, part._backward_hooks)
        state.append((name, part.training, [len(h) for h in hooks]))
    state += [(name, p.requires_grad) for name, p in module.named_parameters()]
    return state


def test_portrait_is_bundled_rgb() -> None:
    image = portrait()
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8


def test_finds_the_astronaut_face(found: dict[str, torch.Tensor]) -> None:
    assert found["boxes"].shape == (1, 4) and found["boxes"].dtype == torch.float32
    assert found["scores"].item() > 0.99
    assert found["labels"].tolist() == [0] and found["labels"].dtype == torch.int64
    assert torch.allclose(found["boxes"][0], torch.tensor(FACE_BOX), atol=6.0)


def test_info_records_each_weights_file() -> None:
    _, info = load_face_detector()
    assert info["model"] == "mtcnn"
    assert set(info["weights_file"]) == set(info["weights_sha256"]) == {"pnet", "rnet", "onet"}
    assert all(len(digest) == 64 for digest in info["weights_sha256"].values())


def test_equals_facenet_detect(detector: MTCNNFaces, small: np.ndarray) -> None:
    from facenet_pytorch import MTCNN

    boxes, probs = MTCNN(select_largest=False, keep_all=True).detect(small)
    ours = detector(as_batch(small))[0]
    assert len(ours["scores"]) == len(boxes) >= 1
    # Equal to float32 rounding: with more than one torch thread, the two pipelines' convolutions may round the last
    # bit differently (a box corner moved by 1 ulp, 7.6e-6 px at 100 px, was seen with 2 threads).
    np.testing.assert_allclose(ours["boxes"].numpy(), np.asarray(boxes, dtype=np.float32), rtol=0, atol=1e-4)
    np.testing.assert_allclose(ours["scores"].numpy(), np.asarray(probs, dtype=np.float32), rtol=0, atol=1e-6)


def test_batch_equals_single_calls(detector: MTCNNFaces, small: np.ndarray) -> None:
    hidden = small.copy()
    hidden[:128] = 128  # the upper half, with the face, greyed out
    images = [small, np.ascontiguousarray(small[:, ::-1]), hidden]
    batch = detector(as_batch(*images))
    assert [len(d["scores"]) for d in batch][:2] == [1, 1]
    for image, together in zip(images, batch, strict=True):
        alone = detector(as_batch(image))[0]
        # Equal to float rounding, not bit for bit: R-Net and O-Net run on batches of other sizes.
        for key in ("boxes", "scores", "labels"):
            assert torch.allclose(together[key].double(), alone[key].double(), atol=1e-3), key


@pytest.mark.parametrize("size", [64, 16])  # 16 < min_face_size: an empty pyramid
def test_no_face_gives_empty_detections(detector: MTCNNFaces, size: int) -> None:
    (out,) = detector(torch.full((1, 3, size, size), 0.5))
    assert out["boxes"].shape == (0, 4) and out["boxes"].dtype == torch.float32
    assert out["scores"].shape == (0,) and out["labels"].shape == (0,)
    assert out["labels"].dtype == torch.int64


def test_pnet_at_the_face_scale_scores_the_face(detector: MTCNNFaces, found: dict[str, torch.Tensor]) -> None:
    image = as_batch(portrait()).requires_grad_(True)
    face = found["boxes"][0]
    pnet_faces = PNetFaces(detector.pnet, face_scale(face, (512, 512)))
    before = module_state(pnet_faces)
    features = []
    handle = pnet_faces.get_submodule(FACE_CAM_LAYER).register_forward_hook(
        lambda _m, _i, output: features.append(output)
    )
    (out,) = pnet_faces(image)
    handle.remove()
    n = len(out["scores"])
    assert out["boxes"].shape == (n, 4) and out["labels"].shape == (n,) and n > 1
    assert torch.all(out["scores"][:-1] >= out["scores"][1:])
    overlap = box_iou(out["boxes"].detach(), face[None])[:, 0] >= 0.3
    best = out["scores"][overlap].max()
    assert best > 0.5
    layer_grad, image_grad = torch.autograd.grad(best, [features[0], image])
    assert features[0].shape[1] == 32 and layer_grad.abs().sum() > 0
    assert image_grad.abs().sum() > 0
    assert module_state(pnet_faces) == before


def test_face_scale_is_p_net_window_clamped() -> None:
    assert face_scale((10, 10, 130, 70), (480, 640)) == pytest.approx(0.1)
    assert face_scale(torch.tensor([0.0, 0.0, 600.0, 600.0]), (480, 640)) == pytest.approx(12 / 480)


def test_calls_leave_modules_as_they_were(detector: MTCNNFaces) -> None:
    detector.rnet.train()
    detector.pnet.conv1.weight.requires_grad_(False)
    try:
        before = module_state(detector)
        detector(torch.full((1, 3, 48, 48), 0.5))
        PNetFaces(detector.pnet, 0.5)(torch.rand(1, 3, 48, 48)).__getitem__(0)["scores"].sum().backward()
        assert module_state(detector) == before
    finally:
        detector.rnet.eval()
        detector.pnet.conv1.weight.requires_grad_(True)


def test_missing_facenet_is_a_one_line_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # import now raises ImportError
    with pytest.raises(UserInputError) as error:
        load_face_detector()
    assert (
        str(error.value) == "face models need facenet-pytorch: pip install --no-deps facenet-pytorch==2.6.0"
    )
