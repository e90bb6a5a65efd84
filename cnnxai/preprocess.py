"""Preprocessing into the model-input frame: the square RGB uint8 image that both LIME and the CAM see, 224x224
unless the model says otherwise (its weights' transforms, e.g. 299 for Inception-v3: :func:`cnnxai.zoo.load_model_spec`)."""

from __future__ import annotations

import numpy as np
from PIL import Image

PREPROCESSING = ("crop", "square")
FRAME_SIZE = 224  # the side of the model-input frame, unless the model says otherwise
RESIZE_SIZE = 256  # the short side before the centre crop of FRAME_SIZE (torchvision's ImageNet ratio)


def resize_for(crop: int) -> int:
    """The resize side that keeps torchvision's ImageNet ratio (256 for 224) for a frame of side ``crop``."""
    return round(crop * RESIZE_SIZE / FRAME_SIZE)


def to_model_frame(
    image: np.ndarray, mode: str = "crop", resize: int = RESIZE_SIZE, crop: int = FRAME_SIZE
) -> np.ndarray:
    """RGB uint8 (H,W,3) -> RGB uint8 (crop,crop,3).

    'crop' (default, torchvision's ImageNet evaluation): resize the short side to ``resize`` (bilinear),
    centre-crop. 'square' (``trans_C`` of the public GradLIME and CamLIME scripts, for parity): resize to ``resize`` x ``resize`` ignoring the
    aspect ratio, centre-crop. Overlays drawn on this frame always align with the CAM.
    """
    if mode not in PREPROCESSING:
        raise ValueError(f"unknown preprocessing {mode!r}; choose one of {', '.join(PREPROCESSING)}")
    pil = Image.fromarray(image)
    width, height = pil.size
    if mode == "square":
        size = (resize, resize)
    else:
        scale = resize / min(width, height)
        size = (max(crop, round(width * scale)), max(crop, round(height * scale)))
    pil = pil.resize(size, Image.BILINEAR)
    width, height = pil.size
    left, top = (width - crop) // 2, (height - crop) // 2
    return np.array(pil.crop((left, top, left + crop, top + crop)).convert("RGB"), dtype=np.uint8)
