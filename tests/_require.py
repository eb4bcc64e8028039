"""Tests of parts installed outside pip (Node.js packages, Chromium, Triton's server): skipped where
a part is absent, failed instead where CI set the variable that says it installed it."""

from __future__ import annotations

import os

import pytest


def skip_unless_present(reason: str | None, env: str, *, module_level: bool = False) -> None:
    """Nothing when ``reason`` is None (the part is present); else skip, or fail when ``env`` is set."""
    if reason is None:
        return
    if os.environ.get(env, "") not in ("", "0"):
        pytest.fail(f"{env} is set but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)
