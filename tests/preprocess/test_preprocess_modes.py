"""Every image mode preprocesses like torchvision, or is refused by name.

The pixels expected of each mode and EXIF orientation are computed with numpy from the decoded
pixels, not with PIL's own conversions; ``tests/cli/test_predict_errors.py`` sends the same files
through ``predict``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image

import resnet_deploy as rd
from resnet_deploy.preprocess.images import Preprocessing

# Resize(36), CenterCrop(32), no normalisation: the tensor is the cropped pixels / 255.
PLAIN = Preprocessing(36, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))

# What a viewer shows of stored pixels under each EXIF Orientation (TIFF 6.0, "Orientation"),
# written with numpy, not with PIL's transposes.
ORIENTATIONS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),  # mirrored about the main diagonal
    6: lambda a: np.rot90(a, -1),  # stored 90 degrees counter-clockwise: a phone held upright
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # mirrored about the other diagonal
    8: lambda a: np.rot90(a, 1),
}
MODE_FILES = ["RGBA.png", "LA.png", "P.png", "P-alpha-table.png", "P-index.gif", "L.png", "1.png",
              "CMYK.jpg", "CMYK.tiff"]


def _pattern(height: int = 40, width: int = 48) -> np.ndarray:
    """An asymmetric RGB image: red rises to the right, green downwards, blue is noise."""
    y, x = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(0).integers(0, 256, (height, width))
    return np.dstack([x * 255 // (width - 1), y * 255 // (height - 1), noise]).astype(np.uint8)


def _exif_photo(path: Path, orientation: int) -> np.ndarray:
    """A JPEG with an EXIF Orientation tag; returns its pixels as decoded, as stored."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    Image.fromarray(_pattern()).save(path, quality=95, exif=exif)
    with Image.open(path) as img:
        assert img.getexif()[ExifTags.Base.Orientation] == orientation
        return np.asarray(img)


def _mode_image(name: str, folder: Path) -> tuple[Path | Image.Image, np.ndarray]:
    """An image file of one mode (PA: an in-memory image, PIL writes no PA file) and the RGB pixels
    torchvision's loader makes of it, computed from the decoded pixels with numpy (CMYK: PIL's
    convert, the reference torchvision uses, checked against PIL's formula)."""
    rgb = _pattern()
    alpha = np.random.default_rng(1).integers(0, 256, rgb.shape[:2]).astype(np.uint8)
    alpha[:8] = 0  # fully transparent rows: their colour is kept (alpha dropped, not composited)
    palette_image = Image.fromarray(rgb).quantize(16)
    if name == "PA":
        pa = palette_image.convert("PA")
        pa.putalpha(Image.fromarray(alpha))
        return pa, np.array(palette_image.getpalette()).reshape(-1, 3)[np.asarray(palette_image)].astype(np.uint8)
    path = folder / name
    mode = name.split("-")[0].split(".")[0]
    make = {"RGBA": lambda: Image.fromarray(np.dstack([rgb, alpha]), "RGBA"),
            "LA": lambda: Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA"),
            "P": lambda: palette_image, "L": lambda: Image.fromarray(rgb[..., 0]),
            "1": lambda: Image.fromarray(rgb[..., 0] > 127),
            "CMYK": lambda: Image.fromarray(np.dstack([rgb, alpha]), "CMYK")}[mode]
    options = {"P-alpha-table.png": {"transparency": bytes(range(0, 256, 16))},
               "P-index.gif": {"transparency": 0}}.get(name, {})
    make().save(path, **options)
    with Image.open(path) as img:
        img.load()
        assert img.mode == mode and ("transparency" in img.info) == bool(options), (img.mode, img.info)
        stored = np.asarray(img)
        if mode == "P":
            return path, np.array(img.getpalette("RGB")).reshape(-1, 3)[stored].astype(np.uint8)
        if mode == "CMYK":
            converted = np.asarray(img.convert("RGB"))
            c, k = stored[..., :3].astype(np.float64), stored[..., 3:].astype(np.float64)
            assert np.abs(converted - (255 - c) * (255 - k) / 255).max() <= 1  # PIL's formula, in integer steps
            return path, converted
    if mode == "RGBA":
        return path, np.ascontiguousarray(stored[..., :3])
    gray = stored[..., 0] if mode == "LA" else stored.astype(np.uint8) * (255 if mode == "1" else 1)
    return path, np.repeat(gray[..., None], 3, axis=2)


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_orientation_is_applied(orientation: int, tmp_path: Path) -> None:
    """A photo with an EXIF Orientation tag gives the tensor of its upright pixels, from a file
    and from a PIL image the caller opened (which is left as it was)."""
    decoded = _exif_photo(tmp_path / "photo.jpg", orientation)
    expected = PLAIN(np.ascontiguousarray(ORIENTATIONS[orientation](decoded)))
    # The same pixels through the same pipeline: bit-identical (atol 0).
    np.testing.assert_allclose(PLAIN(tmp_path / "photo.jpg"), expected, rtol=0, atol=0)
    with Image.open(tmp_path / "photo.jpg") as img:
        np.testing.assert_allclose(PLAIN(img), expected, rtol=0, atol=0)
        assert img.size == (48, 40) and img.getexif()[ExifTags.Base.Orientation] == orientation
    if orientation != 1:  # the stored pixels give another tensor: the check can fail
        assert not np.array_equal(PLAIN(decoded), expected)


@pytest.mark.parametrize("name", [*MODE_FILES, "PA"])
def test_image_modes_match_their_rgb_twins(name: str, tmp_path: Path) -> None:
    """Alpha dropped (not composited), palettes looked up, grayscale and bilevel repeated, CMYK by
    PIL's formula: each mode gives exactly the tensor of its RGB twin (atol 0)."""
    source, expected = _mode_image(name, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's warning about palettes with an alpha table, say
        got = PLAIN(source)
    np.testing.assert_allclose(got, PLAIN(expected), rtol=0, atol=0)


def test_modes_pil_cannot_convert_are_refused_by_name(tmp_path: Path) -> None:
    """PIL has no conversion from La (luminance with premultiplied alpha) to RGB: refused naming
    the image, not an untyped ValueError."""
    with pytest.raises(rd.InputError, match="refused image: PIL cannot convert mode La to RGB"):
        PLAIN(Image.new("La", (48, 40)))
