"""Preprocessing into the model-input frame: the 224x224 RGB uint8 image that both LIME and the CAM see."""

from __future__ import annotations

import numpy as np
from PIL import Image

PREPROCESSING = ("crop", "square")
FRAME_SIZE = 224  # the side of the model-input frame


def to_model_frame(
    image: np.ndarray, mode: str = "crop", resize: int = 256, crop: int = FRAME_SIZE
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
