"""The model registry as test parameters: every registered net, the largest only with -m slow.

Exporting or running the deepest nets takes tens of seconds each on 2 cores and proves nothing
that a shallower net of the same family does not (the same blocks, more of them): ResNet-101/152
share ResNet-50's bottlenecks, ResNet-110/1202 and plain110 ResNet-56's basic CIFAR blocks.
"""

from __future__ import annotations

import pytest

import resnet_deploy as rd

SLOW = {"resnet101", "resnet152", "resnet1202", "resnet110", "plain110"}


def registry_params() -> list:
    """Every registered model name, the :data:`SLOW` ones marked ``slow``."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in rd.list_models()]
