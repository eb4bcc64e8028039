"""Image preprocessing driven by a model's metadata.

For ImageNet models it reproduces torchvision's standard evaluation transform on a PIL image:
``Resize(256)`` (shorter side, bilinear with PIL's antialiasing), ``CenterCrop(224)``, RGB,
scale to [0, 1], ``Normalize(mean, std)``. The arithmetic of the output size and of the crop
offsets follows ``torchvision.transforms.functional`` so results match it to float rounding.

Every image mode PIL decodes becomes RGB as torchvision's PIL loader makes it,
``img.convert("RGB")``, with these decisions:

- EXIF orientation is applied first (``ImageOps.exif_transpose``, to files and PIL images
  alike), as ``torchvision.io.decode_image(..., apply_exif_orientation=True)`` does: a phone
  stores a portrait photo sideways with an Orientation tag, and ``Image.open`` ignores it.
- Alpha (RGBA, LA, PA, palettes with transparency) is dropped, not composited onto a
  background: the colour under a transparent pixel is kept, as torchvision's loader keeps it.
- Palettes (P) are looked up; grayscale (L) and bilevel (1, as 0/255) repeat in 3 channels.
- CMYK (JPEG, TIFF) uses PIL's formula, R = (255 - C)(255 - K)/255 (likewise G, B), with no
  ICC profile, as torchvision's loader does.
- 16-bit modes are scaled by 255/65535 (PIL alone clips them to white); float images (F) and
  modes PIL cannot convert to RGB (La) are refused naming the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .._errors import InputError, OnnxModelError, first_line
from .._file_kind import NotRegularFile, open_regular

__all__ = ["Preprocessing", "load_image", "decode_file", "image_files", "ImageLike", "IMAGE_SUFFIXES",
           "MAX_RESIZE_PIXELS", "PREPROCESSING_KEYS"]

ImageLike = Union[str, Path, Image.Image, np.ndarray]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm")
# The resize target is bounded like the decoded image (PIL's own decompression-bomb limit): a
# 12000x1 PNG of 115 bytes is a 3072000x256 image after Resize(256), 2.4 GB of RGB.
MAX_RESIZE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
MAX_SIZE = 16384  # pixels per side of resize_size/crop_size in metadata
PREPROCESSING_KEYS = ("resize_size", "crop_size", "mean", "std")


def _size(metadata: dict[str, Any], key: str, source: str) -> int | None:
    value = metadata.get(key)
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value)):
        raise OnnxModelError(f"{source}: metadata {key!r} must be a whole number of pixels, received {value!r}")
    if not 1 <= value <= MAX_SIZE:
        raise OnnxModelError(f"{source}: metadata {key!r} must be between 1 and {MAX_SIZE}, received {value!r}")
    return int(value)


def _channels(metadata: dict[str, Any], key: str, default: tuple[float, ...], source: str) -> tuple[float, ...]:
    value = metadata.get(key, default)
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in value)):
        raise OnnxModelError(f"{source}: metadata {key!r} must be 3 finite numbers (R, G, B), received {value!r}")
    if key == "std" and any(v <= 0 for v in value):
        raise OnnxModelError(f"{source}: metadata 'std' must be positive (it divides), received {value!r}")
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class Preprocessing:
    resize_size: int
    crop_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: str = "RGB"
    interpolation: str = "bilinear"

    @classmethod
    def from_metadata(
        cls, metadata: dict[str, Any], input_hw: tuple[int | None, int | None], *, source: str | Path = "model"
    ) -> "Preprocessing":
        """Read ``resize_size``/``crop_size``/``mean``/``std`` from metadata; ImageNet's defaults else.

        Every value is validated here, once, at load: a bad one is an :class:`OnnxModelError`
        naming ``source`` and the key (not an IndexError at the first image).
        """
        source = str(source)
        crop = _size(metadata, "crop_size", source)
        if crop is not None and input_hw[0] is not None and crop != input_hw[0]:
            raise OnnxModelError(f"{source}: metadata 'crop_size' {crop} differs from the model's input "
                                 f"height {input_hw[0]}")
        crop = crop or input_hw[0] or 224
        resize = _size(metadata, "resize_size", source) or (round(crop * 256 / 224) if crop >= 64 else crop)
        if resize < crop:
            raise OnnxModelError(f"{source}: metadata 'resize_size' {resize} is smaller than the crop {crop}")
        order = str(metadata.get("channel_order", "RGB"))
        if order.upper() not in ("RGB", "BGR"):
            raise OnnxModelError(f"{source}: metadata 'channel_order' must be RGB or BGR, received {order!r}")
        return cls(
            resize_size=resize,
            crop_size=crop,
            mean=_channels(metadata, "mean", (0.485, 0.456, 0.406), source),
            std=_channels(metadata, "std", (0.229, 0.224, 0.225), source),
            channel_order=order,
        )

    def to_metadata(self) -> dict[str, Any]:
        return {
            "resize_size": self.resize_size,
            "crop_size": self.crop_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "channel_order": self.channel_order,
            "interpolation": self.interpolation,
            "layout": "NCHW",
            "scale": "1/255",
        }

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """torchvision's ``Resize(int)``: the shorter side becomes ``resize_size``; the longer is truncated."""
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize_size, int(self.resize_size * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)

    def check_size(self, width: int, height: int, *, name: str = "image") -> tuple[int, int]:
        """The resized size of a ``width`` x ``height`` image, or :class:`InputError` for an image
        without pixels or one whose resized size exceeds :data:`MAX_RESIZE_PIXELS`."""
        if width < 1 or height < 1:
            raise InputError(f"refused {name}: a {width}x{height} image has no pixels")
        new_w, new_h = self.resized_size(width, height)
        if new_w * new_h > MAX_RESIZE_PIXELS:
            raise InputError(f"refused {name}: a {width}x{height} image would be resized to {new_w}x{new_h}, "
                             f"more than {MAX_RESIZE_PIXELS:,} pixels")
        return new_w, new_h

    def __call__(self, image: ImageLike, *, name: str | None = None) -> np.ndarray:
        """One image -> float32 ``[3, crop, crop]``; ``name`` is what a refusal calls it (default:
        its path, else "image")."""
        name = name or (str(image) if isinstance(image, (str, Path)) else "image")
        img = to_rgb(load_image(image), name)
        new_w, new_h = self.check_size(*img.size, name=name)
        if (new_w, new_h) != img.size:
            img = img.resize((new_w, new_h), Image.BILINEAR)
        crop = self.crop_size
        if new_w < crop or new_h < crop:
            raise InputError(f"image too small after resizing: {new_w}x{new_h} < crop {crop}")
        top = int(round((new_h - crop) / 2.0))
        left = int(round((new_w - crop) / 2.0))
        img = img.crop((left, top, left + crop, top + crop))
        array = np.asarray(img, dtype=np.float32) / 255.0
        if self.channel_order.upper() == "BGR":
            array = array[..., ::-1]
        array = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)

    def batch(self, images: Sequence[ImageLike]) -> np.ndarray:
        return (np.stack([self(im) for im in images]) if images
                else np.zeros((0, 3, self.crop_size, self.crop_size), np.float32))


def load_image(image: ImageLike) -> Image.Image:
    """Decode a path, a PIL image or an ``HxWx3`` uint8 array into an upright PIL image."""
    if isinstance(image, Image.Image):
        return ImageOps.exif_transpose(image)  # a copy: the caller's image is left as it was
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise InputError(
                f"image arrays must be uint8 HxW or HxWx(1|3|4), received {image.dtype} {image.shape}"
            )
        return Image.fromarray(image.squeeze(-1) if image.ndim == 3 and image.shape[2] == 1 else image)
    path = Path(image)
    try:
        fh = open_regular(path)  # a FIFO, a folder or a device is named as such, and never waited on
    except NotRegularFile as exc:
        raise InputError(str(exc)) from exc
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise InputError(f"image not found: {path}") from exc
    except OSError as exc:
        raise InputError(f"not a readable image: {path} ({exc.strerror or exc})") from exc
    with fh:
        return decode_file(fh, path)


def decode_file(fh: BinaryIO, name: str | Path) -> Image.Image:
    """The image an open binary file holds, upright and 8-bit RGB; ``name`` (a path or a URL) is
    what its refusals name."""
    try:
        # (PIL's own warnings, e.g. corrupt EXIF, name no file; capturing them to add the name would
        # need warnings.catch_warnings, which changes process-wide state: not in a thread-safe Predictor.)
        with Image.open(fh) as img:
            img.load()
            loaded = ImageOps.exif_transpose(img)  # upright, and a copy that outlives the file
    except Image.DecompressionBombError as exc:  # readable, but refused for its size: say so, not "unreadable"
        raise InputError(f"refused {name}: {first_line(exc)}") from exc
    except UnidentifiedImageError as exc:
        raise InputError(f"not a readable image: {name}") from exc
    except (OSError, ValueError) as exc:  # a known format cut short or broken: PIL's reason helps
        raise InputError(f"not a readable image: {name} ({first_line(exc, 120)})") from exc
    return to_rgb(loaded, name)


def to_rgb(img: Image.Image, name: str | Path = "image") -> Image.Image:
    """An 8-bit RGB image, as torchvision's ``ToTensor`` would scale it.

    PIL's ``convert("RGB")`` clips 16-bit pixels to 255 (every 16-bit PNG turned white): those
    are scaled by 255/65535 first. Float images (mode ``F``) have no defined range and are refused,
    and so are modes PIL cannot convert; every other mode is ``convert("RGB")`` (alpha dropped).
    """
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I"):  # I;16, I;16B, I;16L (16-bit PNG, TIFF) and I (32-bit, 16-bit PNG on old Pillow)
        array = np.asarray(img, dtype=np.float64)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise InputError(f"refused {name}: {img.mode} pixels outside 0-65535 have no 8-bit equivalent")
        return Image.fromarray(np.round(array / 257.0).astype(np.uint8)).convert("RGB")
    if img.mode == "F":
        raise InputError(f"refused {name}: floating-point images (mode F) have no defined range; "
                         "save it as 8 or 16 bit")
    if img.mode in ("P", "PA"):
        # Through RGBA: the same RGB as convert("RGB"), without PIL's warning for a palette whose
        # transparency is a table of alphas (it would print a warning line naming no file).
        img = img.convert("RGBA")
    try:
        return img.convert("RGB")
    except ValueError as exc:  # "conversion from La to RGB not supported"
        raise InputError(f"refused {name}: PIL cannot convert mode {img.mode} to RGB") from exc


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """The image files named by ``paths``: files as given, folders as their image files
    (:data:`IMAGE_SUFFIXES`, sorted, not recursive). A folder without images is an error."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {p}")
            files.extend(found)
        else:
            files.append(p)
    return files
