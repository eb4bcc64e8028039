"""Fixed-choice options: an Enum per option, its values listed in ``--help``, and a value outside
them refused in the CLI's one ``error:`` line (click's own refusal is a multi-line usage panel).
Commands receive the value as a string, as the library takes it.

The values are the library's (``tests/cli`` checks that they match): a new mode or method is
added there and here.
"""

from __future__ import annotations

from enum import Enum
from typing import Callable

from ._errors import fail

class Mode(str, Enum):
    """bench and tune ``--mode`` (resnet_deploy.bench.options.MODES)."""

    LATENCY = "latency"
    THROUGHPUT = "throughput"


class Target(str, Enum):
    """optimize ``--target`` (resnet_deploy.graph.passes.TARGETS)."""

    PORTABLE = "portable"
    CPU = "cpu"
    CUDA = "cuda"


class FilePrecision(str, Enum):
    """optimize ``--precision``: the precision of the file written."""

    FP32 = "fp32"
    FP16 = "fp16"


class CalibrationMethod(str, Enum):
    """quantize ``--method`` (resnet_deploy.precision.quantize.CALIBRATION_METHODS)."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class TargetCpu(str, Enum):
    """quantize, export --int8 and tune ``--target-cpu`` (resnet_deploy.precision.recipes.TARGET_CPUS)."""

    AUTO = "auto"
    VNNI = "vnni"
    ANY = "any"


def _expected(values: list[str]) -> str:
    return " or ".join(values) if len(values) == 2 else "one of " + ", ".join(values)


def choice(enum: type[Enum], what: str) -> Callable[[str], str]:
    """The parser of an option of ``enum``'s values (case and spaces ignored), which hands the
    command the value itself; a value outside them ends the command with
    ``error: unknown <what> 'x'; expected ...`` and exit status 1."""
    def parse(value: str) -> str:
        try:
            return str(enum(str(value).strip().lower()).value)
        except ValueError:
            raise fail(f"unknown {what} {value!r}; expected {_expected([m.value for m in enum])}") from None

    return parse


def metavar(enum: type[Enum]) -> str:
    """``[a|b|c]``, as click shows a choice."""
    return "[" + "|".join(m.value for m in enum) + "]"
