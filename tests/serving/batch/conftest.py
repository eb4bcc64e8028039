"""Fixtures of the serving tests: the batch tests' photos, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._photos import make_photos


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 JPEG variants of the shipped photo in a/ and b/, and odd/ (see :func:`make_photos`)."""
    folder = tmp_path_factory.mktemp("photos")
    make_photos(folder, 200)
    return folder
