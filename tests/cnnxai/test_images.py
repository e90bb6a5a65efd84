"""Image loading survives what real folders contain; broken files are clear errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnxai.errors import ImageLoadError
from cnnxai.images import find_images, load_image
from cnnxai.preprocess import to_model_frame
from tests.helpers import small_photo


@pytest.fixture
def photo_rgb() -> np.ndarray:
    return small_photo(40)


def test_grey_rgba_palette_and_cmyk_become_rgb(tmp_path, photo_rgb):
    pil = Image.fromarray(photo_rgb)
    pil.convert("L").save(tmp_path / "grey.png")
    rgba = pil.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: composited on white
    rgba.save(tmp_path / "clear.png")
    pil.convert("P").save(tmp_path / "palette.gif")
    pil.convert("CMYK").save(tmp_path / "cmyk.jpg")
    grey = load_image(tmp_path / "grey.png")
    assert grey.shape == (40, 40, 3) and grey.dtype == np.uint8
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    assert (load_image(tmp_path / "clear.png") == 255).all()
    palette = load_image(tmp_path / "palette.gif")
    assert palette.shape == (40, 40, 3) and np.abs(palette.astype(int) - photo_rgb).mean() < 20
    cmyk = load_image(tmp_path / "cmyk.jpg")
    assert cmyk.shape == (40, 40, 3) and np.abs(cmyk.astype(int) - photo_rgb).mean() < 25


def test_sixteen_bit_is_rescaled(tmp_path):
    ramp = (np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).astype(np.uint16)
    pil = Image.fromarray(ramp)
    assert pil.mode.startswith("I")
    pil.save(tmp_path / "deep.png")
    image = load_image(tmp_path / "deep.png")
    assert image.shape == (40, 40, 3) and image.min() == 0 and image.max() == 255


def test_exif_orientation_is_applied(tmp_path, photo_rgb):
    wide = np.zeros((20, 40, 3), dtype=np.uint8)
    wide[:, :20] = 255  # white left half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(wide).save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    upright = load_image(tmp_path / "rotated.jpg")
    assert upright.shape == (40, 20, 3)
    assert upright[:20].mean() > 200 and upright[20:].mean() < 50  # the white half is now on top


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("empty.jpg", b"", "empty"),
        ("notes.jpg", b"this is a text file, not a photo\n" * 10, "not an image"),
        ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "PNG|corrupt|not an image|truncated"),
    ],
)
def test_broken_files_are_errors_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=message) as info:
        load_image(path)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_truncated_image_is_an_error(tmp_path, photo_rgb):
    Image.fromarray(small_photo(64)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(tmp_path / "cut.jpg")


def test_tiny_image_is_refused(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "dot.png")
    with pytest.raises(ImageLoadError, match="too small"):
        load_image(tmp_path / "dot.png")


def test_folder_walk_is_sorted_and_recursive(tmp_path, photo_rgb):
    (tmp_path / "b").mkdir()
    for rel in ("b/z.png", "a.JPG", "b/c.txt"):
        (tmp_path / rel).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)] == ["a.JPG", "b/z.png"]


@pytest.mark.parametrize("mode", ["crop", "square"])
def test_model_frame_is_224_rgb(mode, photo_rgb):
    wide = np.concatenate([photo_rgb, photo_rgb], axis=1)
    frame = to_model_frame(wide, mode)
    assert frame.shape == (224, 224, 3) and frame.dtype == np.uint8
