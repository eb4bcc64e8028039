"""The zoo's catalogue as package data, so that ``resnet-deploy models`` needs no PyTorch.

``data/models.json`` is :func:`resnet_deploy.models.describe_models` written out (parameters and
MACs are counted on PyTorch's meta device, which the runtime-only install does not have). A test
compares it with the live catalogue, so a model added to the registry without it fails there;
``python -m resnet_deploy._zoo_catalogue`` rewrites it.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["shipped_catalogue", "CATALOGUE_FILE"]

CATALOGUE_FILE = Path(str(resources.files("resnet_deploy") / "data" / "models.json"))


def shipped_catalogue() -> list[dict[str, Any]]:
    """One dict per registered model, as ``describe_models()`` gives them (ModelRow fields)."""
    return json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))


if __name__ == "__main__":  # needs torch: the live catalogue
    from .models import describe_models

    CATALOGUE_FILE.write_text(json.dumps([r.to_dict() for r in describe_models()], indent=1) + "\n", encoding="utf-8")
    print(f"wrote {CATALOGUE_FILE}")
