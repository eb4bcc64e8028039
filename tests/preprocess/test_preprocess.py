"""Preprocessing against an independent reference: torchvision's evaluation transform written with torch ops."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import resnet_deploy as rd
from resnet_deploy.preprocess.images import Preprocessing, load_image
from resnet_deploy.preprocess.labels import imagenet_labels

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def tensor_eval_transform(img: Image.Image, resize: int = 256, crop: int = 224) -> np.ndarray:
    """An independent reference: torchvision's evaluation transform on the tensor path, written
    with torch ops (torchvision itself cannot be installed beside torch 2.13 here).

    ``Resize(256)`` is ``interpolate(mode="bilinear", antialias=True)`` on float pixels (torch's
    antialiased kernel is the one PIL uses, computed in float instead of PIL's 8-bit passes);
    the sizes follow torchvision's documented rule (shorter side -> 256, the longer one scaled
    and truncated; ``CenterCrop`` rounds the offsets); then ``ToTensor`` and ``Normalize``."""
    x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
    h, w = x.shape[-2:]
    new_h, new_w = (int(resize * h / w), resize) if w <= h else (resize, int(resize * w / h))
    x = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = int(round((new_h - crop) / 2.0)), int(round((new_w - crop) / 2.0))
    x = x[0, :, top : top + crop, left : left + crop] / 255
    return ((x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)).numpy()


# PIL resizes 8-bit images in two separable passes and rounds to uint8 after each: at most half
# a grey level from each rounding (the first carried through convex weights), so at most one grey
# level from the float reference, plus float slack. A crop one pixel off, another filter, a
# missing or wrong normalisation or swapped channels all exceed it by far on a photograph.
MAX_GREY_LEVELS = 1.0 + 1e-3
MEAN_GREY_LEVELS = 0.4  # two independent roundings average about 1/3 of a grey level


# (256, 259) and (259, 256) leave 35 pixels to crop: the offset rounds 17.5 to 18, not 17.
@pytest.mark.parametrize("size", [(512, 600), (600, 512), (300, 257), (224, 224), (1000, 333),
                                  (250, 260), (256, 259), (259, 256)])
def test_matches_the_tensor_transform(sample_image: Path, size: tuple[int, int]) -> None:
    img = Image.open(sample_image).convert("RGB").resize(size, Image.BICUBIC)
    ours = Preprocessing(256, 224, MEAN, STD)(img)
    ref = tensor_eval_transform(img)
    assert ours.shape == ref.shape == (3, 224, 224) and ours.dtype == np.float32
    grey = np.abs(ours - ref) * np.asarray(STD, np.float32).reshape(3, 1, 1) * 255  # back to 0-255 pixel units
    print(size, f"max {grey.max():.4f}, mean {grey.mean():.4f} grey levels")
    assert grey.max() <= MAX_GREY_LEVELS and grey.mean() <= MEAN_GREY_LEVELS


def test_inputs_of_every_kind(sample_image: Path) -> None:
    pre = Preprocessing(36, 32, MEAN, STD)
    from_path = pre(sample_image)
    img = Image.open(sample_image)
    np.testing.assert_array_equal(pre(img), from_path)
    np.testing.assert_array_equal(pre(np.array(img.convert("RGB"))), from_path)
    gray = pre(img.convert("L"))
    assert gray.shape == (3, 32, 32)
    rgba = pre(img.convert("RGBA"))
    np.testing.assert_allclose(rgba, from_path, atol=1e-6)


def test_bad_images(tmp_path: Path) -> None:
    not_image = tmp_path / "a.jpg"
    not_image.write_text("hello")
    with pytest.raises(rd.InputError, match="not a readable image"):
        load_image(not_image)
    truncated = tmp_path / "b.jpg"
    from resnet_deploy.preprocess.labels import sample_image_path

    truncated.write_bytes(sample_image_path().read_bytes()[:2000])
    with pytest.raises(rd.InputError, match="not a readable image"):
        load_image(truncated)
    with pytest.raises(rd.InputError, match="not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(rd.InputError, match="uint8"):
        load_image(np.zeros((4, 4, 3), np.float32))


def test_imagenet_labels() -> None:
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert labels[0] == "tench" and labels[207] == "golden retriever" and labels[999] == "toilet tissue"


def test_metadata_roundtrip() -> None:
    pre = Preprocessing(36, 32, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    again = Preprocessing.from_metadata(pre.to_metadata(), (32, 32))
    assert again == pre
    assert math.isclose(Preprocessing.from_metadata({}, (224, 224)).resize_size, 256)
