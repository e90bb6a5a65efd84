"""A real face detector to explain: MTCNN, in torchvision's detection format.

The networks, their weights and the cascade are facenet-pytorch's: its wheel (MIT licence) carries the
P-Net, R-Net and O-Net weights (``facenet_pytorch/data/{pnet,rnet,onet}.pt``), so the detector works
offline. Its metadata pins old torch and numpy, hence ``pip install --no-deps facenet-pytorch==2.6.0``.

Two views of the one detector:

* :class:`MTCNNFaces` runs the whole cascade and returns the faces; it is what black-box explainers
  (LIME and its kin) perturb. The cascade crops, thresholds and suppresses, so it is not differentiable.
* :class:`PNetFaces` is the cascade's first stage at one pyramid scale: differentiable, and its feature
  maps are aligned with the image, so Grad-CAM can explain a face's score through it. R-Net and O-Net see
  crops resized to 24x24 and 48x48, so their feature maps are not aligned with the image; P-Net slides a
  12x12 window over the whole image, and at the face's own scale (:func:`face_scale`) it is the stage that
  decides whether that face becomes a candidate at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnxai.errors import UserInputError

INSTALL_HINT = "face models need facenet-pytorch: pip install --no-deps facenet-pytorch==2.6.0"

# Grad-CAM layer of PNetFaces: P-Net's last feature map (32 channels) before its two 1x1 heads.
FACE_CAM_LAYER = "pnet.prelu3"

# P-Net's window in pixels of the scaled image, and its stride there (generateBoundingBox's cellsize, stride).
P_NET_WINDOW = 12
P_NET_STRIDE = 2

_NETS = ("pnet", "rnet", "onet")


def _facenet():
    """The facenet_pytorch package, or a one-line UserInputError saying how to install it."""
    try:
        import facenet_pytorch
    except ImportError:
        raise UserInputError(INSTALL_HINT) from None
    return facenet_pytorch


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (B,3,H,W) in [0,1], got shape {tuple(images.shape)}")


def _detections(boxes: torch.Tensor, scores: torch.Tensor) -> dict[str, torch.Tensor]:
    """torchvision's detection dict, rows sorted by score descending (ties keep their order)."""
    order = torch.argsort(scores, descending=True, stable=True)
    return {
        "boxes": boxes[order],
        "scores": scores[order],
        "labels": torch.zeros(len(order), dtype=torch.int64, device=scores.device),
    }


class MTCNNFaces(nn.Module):
    """The MTCNN cascade (P-Net, R-Net, O-Net) as a torchvision-style detector of one class, "face".

    ``forward(images)`` takes images (B,3,H,W) float in [0,1], all of one size, and returns B dicts
    ``{"boxes": (n,4) float xyxy in input pixels, "scores": (n,) face probability (O-Net's),
    "labels": (n,) int64 zeros}`` sorted by score descending, on the input's device. The B images go through
    the cascade together: facenet-pytorch's ``detect_face`` is called once on the whole batch (as 0..255
    pixels, the scale its weights expect), so the detections are facenet's ``MTCNN.detect`` ones, value for
    value. The defaults are facenet's MTCNN defaults. Runs without gradients: the cascade crops, thresholds
    and suppresses candidates, so it is not differentiable end to end (see :class:`PNetFaces`).
    """

    def __init__(
        self,
        pnet: nn.Module,
        rnet: nn.Module,
        onet: nn.Module,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
    ) -> None:
        super().__init__()
        if len(thresholds) != 3:
            raise ValueError(f"thresholds: one per stage (P-Net, R-Net, O-Net), got {list(thresholds)}")
        self.pnet = pnet
        self.rnet = rnet
        self.onet = onet
        self.min_face_size = int(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        _check_images(images)
        from facenet_pytorch.models.utils.detect_face import detect_face

        device = images.device
        height, width = images.shape[2:]
        if min(height, width) < self.min_face_size:  # an empty pyramid, on which detect_face fails
            empty = torch.zeros(0, 5, device=device)
            return [_detections(empty[:, :4], empty[:, 4]) for _ in range(len(images))]
        with torch.no_grad():
            pixels = images.detach().permute(0, 2, 3, 1) * 255.0  # (B,H,W,3) in 0..255, detect_face's input
            batch_boxes, _ = detect_face(
                pixels,
                self.min_face_size,
                self.pnet,
                self.rnet,
                self.onet,
                list(self.thresholds),
                self.factor,
                device,
            )
        out = []
        for found in batch_boxes:  # (n,5) rows x1,y1,x2,y2,score per image, as numpy
            rows = torch.as_tensor(np.asarray(found, dtype=np.float32).reshape(-1, 5), device=device)
            out.append(_detections(rows[:, :4], rows[:, 4]))
        return out


class PNetFaces(nn.Module):
    """P-Net at one pyramid scale, as a differentiable detector aligned with the image (for Grad-CAM).

    ``forward(images)`` takes images (B,3,H,W) in [0,1] and does what the cascade's first stage does at
    ``scale``: resizes the images to ``(int(H*scale+1), int(W*scale+1))`` with facenet's ``imresample``
    (area interpolation), normalises as MTCNN does (``(x*255 - 127.5)/128``) and runs P-Net. It returns B
    torchvision-style dicts with one candidate per P-Net output cell: ``"boxes"`` (n,4) is the cell's 12x12
    window mapped back to input pixels (facenet's ``generateBoundingBox``) with P-Net's box regression
    applied, ``"scores"`` (n,) the cell's face probability, ``"labels"`` (n,) int64 zeros; rows sorted by
    score descending. Nothing is thresholded or suppressed (cells below ``min_score`` are dropped, which
    leaves the others' gradients intact), so every score is differentiable w.r.t. the input images.
    The Grad-CAM layer is :data:`FACE_CAM_LAYER`; pick the scale with :func:`face_scale`.
    """

    def __init__(self, pnet: nn.Module, scale: float, min_score: float = 0.0) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.pnet = pnet
        self.scale = float(scale)
        self.min_score = float(min_score)

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        _check_images(images)
        from facenet_pytorch.models.utils.detect_face import generateBoundingBox, imresample

        height, width = images.shape[2:]
        size = (int(height * self.scale + 1), int(width * self.scale + 1))  # as detect_face's pyramid
        dtype = next(self.pnet.parameters()).dtype
        scaled = imresample(images.to(dtype) * 255.0, size)
        reg, probs = self.pnet((scaled - 127.5) * 0.0078125)
        # (n,9) rows: window x1,y1,x2,y2 (constant w.r.t. the input), face probability, regression (4)
        cells, image_inds = generateBoundingBox(reg, probs[:, 1], self.scale, self.min_score)
        # P-Net's box regression, as detect_face applies it after its first stage
        window = cells[:, :4]
        side = torch.stack([window[:, 2] - window[:, 0], window[:, 3] - window[:, 1]] * 2, dim=1)
        boxes = window + cells[:, 5:9] * side
        return [_detections(boxes[image_inds == b], cells[image_inds == b, 4]) for b in range(len(images))]


def face_scale(box: Sequence[float] | torch.Tensor, image_size: tuple[int, int]) -> float:
    """The pyramid scale at which ``box`` (x1,y1,x2,y2 in pixels) becomes P-Net's 12 px window.

    ``image_size`` is (H, W). The box's longer side is the face size (the cascade squares its candidates
    the same way); the scale is clamped so the scaled image keeps at least 12 px per side, the smallest
    input P-Net accepts (facenet's pyramid stops there too).
    """
    x1, y1, x2, y2 = (float(v) for v in list(box)[:4])
    side = max(x2 - x1, y2 - y1, 1.0)
    height, width = image_size
    return max(P_NET_WINDOW / side, P_NET_WINDOW / min(height, width))


def weights_paths() -> dict[str, Path]:
    """The wheel's weights file of each network: {"pnet": .../pnet.pt, "rnet": ..., "onet": ...}."""
    root = Path(_facenet().__file__).parent / "data"
    return {name: root / f"{name}.pt" for name in _NETS}


def load_face_detector(device: str | torch.device = "cpu", **settings) -> tuple[MTCNNFaces, dict]:
    """MTCNN with the facenet-pytorch wheel's weights, in eval mode on ``device``.

    ``settings`` go to :class:`MTCNNFaces` (min_face_size, thresholds, factor). Returns (detector, info):
    info records each network's weights file and SHA-256 for the manifest, as the model zoo does for one
    file: ``{"model": "mtcnn", "weights_file": {net: path}, "weights_sha256": {net: hex digest}}``.
    Raises :class:`UserInputError` (one line, with the install command) without facenet-pytorch.
    """
    from cnnxai.zoo import file_sha256

    facenet = _facenet()
    paths = weights_paths()
    nets = {"pnet": facenet.PNet, "rnet": facenet.RNet, "onet": facenet.ONet}
    modules = {}
    for name, cls in nets.items():
        module = cls(pretrained=False)
        module.load_state_dict(torch.load(paths[name], map_location="cpu", weights_only=True))
        modules[name] = module
    detector = MTCNNFaces(**modules, **settings).eval().to(device)
    info = {
        "model": "mtcnn",
        "weights_file": {name: str(path) for name, path in paths.items()},
        "weights_sha256": {name: file_sha256(path) for name, path in paths.items()},
    }
    return detector, info


def portrait() -> np.ndarray:
    """The bundled portrait with one face: scikit-image's astronaut, RGB uint8 (512,512,3), no download."""
    from skimage import data

    return data.astronaut()
