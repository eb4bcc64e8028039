"""Class names from a labels file: one per line, stored in a model's metadata by ``export --labels``."""

from __future__ import annotations

from pathlib import Path

from ._errors import ResnetDeployError

__all__ = ["read_labels_file"]


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
