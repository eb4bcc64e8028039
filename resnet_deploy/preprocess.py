"""Image preprocessing driven by a model's metadata.

For ImageNet models it reproduces torchvision's standard evaluation transform on a PIL image:
``Resize(256)`` (shorter side, bilinear with PIL's antialiasing), ``CenterCrop(224)``, RGB,
scale to [0, 1], ``Normalize(mean, std)``. The arithmetic of the output size and of the crop
offsets follows ``torchvision.transforms.functional`` so results match it to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from ._errors import InputError

__all__ = ["Preprocessing", "load_image", "ImageLike", "imagenet_labels", "sample_image_path"]

ImageLike = Union[str, Path, Image.Image, np.ndarray]


@dataclass(frozen=True)
class Preprocessing:
    resize_size: int
    crop_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: str = "RGB"
    interpolation: str = "bilinear"

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], input_hw: tuple[int | None, int | None]) -> "Preprocessing":
        """Read ``resize_size``/``crop_size``/``mean``/``std`` from metadata; ImageNet's defaults else."""
        crop = metadata.get("crop_size") or input_hw[0] or 224
        resize = metadata.get("resize_size") or (round(crop * 256 / 224) if crop >= 64 else crop)
        return cls(
            resize_size=int(resize),
            crop_size=int(crop),
            mean=tuple(float(v) for v in metadata.get("mean", (0.485, 0.456, 0.406))),
            std=tuple(float(v) for v in metadata.get("std", (0.229, 0.224, 0.225))),
            channel_order=str(metadata.get("channel_order", "RGB")),
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

    def __call__(self, image: ImageLike) -> np.ndarray:
        """One image -> float32 ``[3, crop, crop]``."""
        img = load_image(image)
        if img.mode != "RGB":
            img = img.convert("RGB")
        new_w, new_h = self.resized_size(*img.size)
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
        return np.stack([self(im) for im in images]) if images else np.zeros((0, 3, self.crop_size, self.crop_size), np.float32)


def load_image(image: ImageLike) -> Image.Image:
    """Decode a path, a PIL image or an ``HxWx3`` uint8 array into a PIL image."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise InputError(
                f"image arrays must be uint8 HxW or HxWx(1|3|4), received {image.dtype} {image.shape}"
            )
        return Image.fromarray(image.squeeze(-1) if image.ndim == 3 and image.shape[2] == 1 else image)
    path = Path(image)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy() if img.mode == "RGB" else img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"not a readable image: {path}") from exc


def _data_file(name: str) -> Path:
    return Path(str(resources.files("resnet_deploy") / "data" / name))


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in the standard index order (shipped as package data)."""
    return _data_file("imagenet_classes.txt").read_text(encoding="utf-8").splitlines()


def sample_image_path() -> Path:
    """A real photograph shipped with the package (Grace Hopper, public domain, via matplotlib)."""
    return _data_file("grace_hopper.jpg")
