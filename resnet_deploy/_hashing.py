"""One reader for one fact: the SHA-256 of a file (weights records, the bench cache key,
profiles), and the digest of a model with its external data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping

__all__ = ["file_sha256", "model_digest", "EXTERNAL_DATA_DIGEST"]

# The domain of the digest of a model with external data: no single file can hash to it.
EXTERNAL_DATA_DIGEST = b"resnet-deploy model with external data, v1\n"


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (checkpoints and models run to hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_digest(model_sha256: str, external: Mapping[str, str]) -> str:
    """What a deployment profile pins: a model file and the external-data files it names.

    A single-file model's digest is the SHA-256 of its bytes (as profiles have always recorded).
    With external data it is the SHA-256 of :data:`EXTERNAL_DATA_DIGEST` followed by the JSON
    ``{"model": <the file's SHA-256>, "external_data": {<location as written in the model>:
    <that file's SHA-256>}}`` with sorted keys: changing any weight in any file changes it.

    Args:
        model_sha256: hex SHA-256 of the ``.onnx`` file's bytes.
        external: location -> hex SHA-256 of each external-data file.
    """
    if not external:
        return model_sha256
    payload = json.dumps({"model": model_sha256, "external_data": dict(external)}, sort_keys=True)
    return hashlib.sha256(EXTERNAL_DATA_DIGEST + payload.encode()).hexdigest()
