"""Preprocessing against torchvision's evaluation transform, written out here with torch ops."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import resnet_deploy as rd
from resnet_deploy.preprocess import Preprocessing, imagenet_labels, load_image

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def torchvision_eval_transform(img: Image.Image, resize: int = 256, crop: int = 224) -> torch.Tensor:
    """transforms.Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(mean, std)]) on a PIL image,
    following torchvision.transforms.functional step by step."""
    img = img.convert("RGB")
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = resize, int(resize * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    img = img.resize((new_w, new_h), Image.BILINEAR)  # F.resize on PIL: PIL bilinear, antialiased
    top, left = int(round((new_h - crop) / 2.0)), int(round((new_w - crop) / 2.0))
    img = img.crop((left, top, left + crop, top + crop))
    t = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div(255)  # ToTensor
    return (t - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)  # Normalize


@pytest.mark.parametrize("size", [(512, 600), (600, 512), (300, 257), (224, 224), (1000, 333)])
def test_matches_torchvision(sample_image: Path, size: tuple[int, int]) -> None:
    img = Image.open(sample_image).convert("RGB").resize(size, Image.BICUBIC)
    pre = Preprocessing(256, 224, MEAN, STD)
    ours = pre(img)
    ref = torchvision_eval_transform(img).numpy()
    assert ours.shape == (3, 224, 224) and ours.dtype == np.float32
    err = float(np.max(np.abs(ours - ref)))
    print(size, err)
    assert err < 1e-5


def test_close_to_tensor_antialiased_resize(sample_image: Path) -> None:
    """torchvision's tensor path (antialiased bilinear interpolate) agrees within a few grey levels."""
    img = Image.open(sample_image).convert("RGB")
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().unsqueeze(0) / 255
    w, h = img.size
    new_h, new_w = int(256 * h / w), 256
    x = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top = int(round((new_h - 224) / 2.0))
    x = x[0, :, top : top + 224, 16:240]
    ref = ((x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)).numpy()
    ours = Preprocessing(256, 224, MEAN, STD)(img)
    mean_err = float(np.mean(np.abs(ours - ref))) * 0.226 * 255  # in grey levels
    print("mean abs difference in grey levels:", mean_err)
    assert mean_err < 2.0


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
    from resnet_deploy.preprocess import sample_image_path

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
