"""The benchmark: engines side by side, each in its own process, rounds interleaved.

The flow, one module each: :mod:`.catalogue` (every engine, declared once; ``tune`` filters it)
-> :mod:`.plan` (which engines, which baseline) -> :mod:`.artifacts` (the ONNX files the zoo's
engines run, made by :mod:`.model_files` and cached by :mod:`.cache`) -> :mod:`.run` (one
persistent worker per engine, :mod:`.process`, interleaved rounds, records) -> :mod:`.worker`
(``python -m resnet_deploy.bench.worker``, with the backends of :mod:`.backends`) ->
:mod:`.report` (CSV, markdown, plot and the terminal table from the one :class:`~.schema.Record`)
-> :mod:`.outputs` (the reports written, and the verdicts that make the exit status).

Names are re-exported lazily (PEP 562): importing this package, as every worker does, loads
neither torch nor the exporter.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BenchOptions", "BenchResult", "Engine", "Record", "RECORD_FIELDS", "PRECISIONS", "MODES",
    "plan_engines", "run_benchmark", "to_csv", "to_markdown", "plot", "Reports", "check_measured", "validate",
]

_WHERE = {
    "BenchOptions": "options", "validate": "options", "PRECISIONS": "options", "MODES": "options",
    "BenchResult": "schema", "Engine": "schema", "Record": "schema", "RECORD_FIELDS": "schema",
    "plan_engines": "plan",
    "run_benchmark": "run",
    "to_csv": "report", "to_markdown": "report", "plot": "report",
    "Reports": "outputs", "check_measured": "outputs",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
