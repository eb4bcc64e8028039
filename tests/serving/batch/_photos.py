"""Real photos for the batch tests: JPEG variants of the shipped portrait, and the broken files a
job meets in the wild."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from resnet_deploy.preprocess.labels import sample_image_path

# The broken files and what their row says; each is refused by predict too.
BROKEN = {
    "zero.jpg": "not a readable image",
    "truncated.jpg": "not a readable image",
    "text.jpg": "not a readable image",
    "bomb.png": "refused",  # a 20000x20000 header: PIL's decompression-bomb bound
    "float.tif": "floating-point images (mode F)",
}
# Odd but valid: predict accepts them, so batch must answer them.
ODD = ("cmyk.jpg", "gray16.png")


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))


def make_photos(folder: Path, count: int) -> list[Path]:
    """``count`` small JPEGs (crops, sizes, flips, qualities) in two subfolders, plus odd/ holding
    :data:`ODD` and :data:`BROKEN`, and a text file no folder search lists. Returns the JPEGs."""
    base = Image.open(sample_image_path()).convert("RGB").resize((96, 112), Image.Resampling.LANCZOS)
    rng = np.random.default_rng(0)
    made = []
    for i in range(count):
        left, top = (int(v) for v in rng.integers(0, 30, 2))
        photo = base.crop((left, top, left + int(rng.integers(50, 66)), top + int(rng.integers(50, 82))))
        photo = photo.resize((int(rng.integers(34, 90)), int(rng.integers(34, 90))), Image.Resampling.BILINEAR)
        if i % 3 == 1:
            photo = ImageOps.mirror(photo)
        path = folder / ("a" if i % 2 else "b") / f"photo{i:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        photo.save(path, quality=int(rng.integers(30, 96)))
        made.append(path)
    odd = folder / "odd"
    odd.mkdir()
    base.convert("CMYK").save(odd / "cmyk.jpg")
    Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257).save(odd / "gray16.png")
    (odd / "zero.jpg").write_bytes(b"")
    full = made[0].read_bytes()
    (odd / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (odd / "text.jpg").write_text("a text file named like a JPEG\n")
    (odd / "bomb.png").write_bytes(_png_header(20000, 20000))
    Image.fromarray(np.asarray(base.convert("L"), dtype=np.float32)).save(odd / "float.tif")
    (folder / "notes.txt").write_text("not an image: a folder search skips it\n")
    return made
