"""Loading images that real folders contain: grey, RGBA, palette, 16-bit, CMYK, EXIF-rotated, or broken; and
the one mask operation that the synthetic data and the localisation metrics share (:func:`dilate`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from cnnxai.errors import ImageLoadError, UserInputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MIN_SIDE = 16  # smaller images give one or two superpixels after upscaling: nothing to explain
SAMPLE_IMAGES = ("chelsea", "coffee", "rocket")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency is composited on white, 16-bit and float are rescaled to 8 bits."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = np.zeros_like(values) if high <= low else (values - low) / (high - low) * 255.0
        return Image.fromarray(scaled.round().astype(np.uint8)).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGBX


def load_image(path: str | Path) -> np.ndarray:
    """RGB uint8 (H,W,3) of an image file, upright (EXIF orientation applied).

    Raises :class:`ImageLoadError` naming the file for a missing, empty, truncated, corrupt or non-image file,
    or an image smaller than 16 pixels on a side.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file; check the path")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: the file is empty (0 bytes); replace it with a real image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. PIL's "possibly corrupt EXIF" chatter; real errors raise
            with Image.open(path) as opened:
                opened.load()  # decode now: truncated data raises here, not later
                image = _to_rgb(ImageOps.exif_transpose(opened))
    except UnidentifiedImageError:
        raise ImageLoadError(
            f"{path}: not an image file PIL can read (wrong extension or corrupt); replace or remove it"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(
            f"{path}: the image data is truncated or corrupt ({error}); replace or remove it"
        ) from None
    array = np.array(image, dtype=np.uint8)
    if min(array.shape[:2]) < MIN_SIDE:
        height, width = array.shape[:2]
        raise ImageLoadError(
            f"{path}: image is {width}x{height} pixels, too small to segment; use one at least {MIN_SIDE}x{MIN_SIDE}"
        )
    return array


def sample_image(name: str = "chelsea") -> np.ndarray:
    """A built-in sample photo from scikit-image (no download): 'chelsea' (a cat), 'coffee', 'rocket'."""
    from skimage import data

    if name not in SAMPLE_IMAGES:
        raise UserInputError(f"unknown sample image {name!r}; choose one of {', '.join(SAMPLE_IMAGES)}")
    return np.array(getattr(data, name)(), dtype=np.uint8)


def find_images(folder: str | Path) -> list[Path]:
    """Every file with an image suffix under ``folder`` (recursively), in sorted order."""
    folder = Path(folder)
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise UserInputError(
            f"{folder}: no images found (looked for {', '.join(IMAGE_SUFFIXES)}); point --image-path at a file or a folder of images"
        )
    return found


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """The mask (H,W) grown by ``pixels`` in the max (chessboard) norm: bool (H,W)."""
    if pixels <= 0:
        return mask.astype(bool)
    return ndimage.maximum_filter(mask.astype(bool), size=2 * pixels + 1, mode="constant", cval=False)
