"""Class names and the package's data: ImageNet's labels, the sample photograph, and a labels file
(one name per line, stored in a model's metadata by ``export --labels``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .._errors import ResnetDeployError

__all__ = ["read_labels_file", "imagenet_labels", "sample_image_path"]


def read_labels_file(path: str | Path, num_classes: int | None = None) -> list[str]:
    """One class name per line; blank trailing lines and a UTF-8 byte-order mark (Windows editors
    write one) ignored. With ``num_classes``, a file of another length is refused naming it."""
    path = Path(path)
    if not path.is_file():
        raise ResnetDeployError(f"labels file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (UnicodeDecodeError, OSError) as exc:
        raise ResnetDeployError(f"labels file is not UTF-8 text: {path}") from exc
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ResnetDeployError(f"labels file is empty: {path}")
    if num_classes is not None and len(lines) != num_classes:
        raise ResnetDeployError(f"--labels {path} has {len(lines)} names for {num_classes} classes")
    return [line.strip() for line in lines]


def _data_file(name: str) -> Path:
    return Path(str(resources.files("resnet_deploy") / "data" / name))


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in the standard index order (shipped as package data)."""
    return _data_file("imagenet_classes.txt").read_text(encoding="utf-8").splitlines()


def sample_image_path() -> Path:
    """A real photograph shipped with the package (Grace Hopper, public domain, via matplotlib)."""
    return _data_file("grace_hopper.jpg")
