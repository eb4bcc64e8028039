"""The pass registry and the pipeline that runs passes to a fixed point."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import onnx

from ._graph import remove_dead_nodes, remove_unused_initializers

__all__ = ["PassResult", "GraphPass", "register_pass", "list_passes", "run_passes", "TARGETS"]

TARGETS = ("portable", "cpu", "cuda")


@dataclass
class PassResult:
    """What one application of a pass changed."""

    name: str
    changes: int
    details: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GraphPass:
    name: str
    fn: Callable[[onnx.ModelProto], PassResult]
    targets: tuple[str, ...]


_PASSES: dict[str, GraphPass] = {}


def register_pass(name: str, *, targets: tuple[str, ...]) -> Callable:
    def decorator(fn: Callable[[onnx.ModelProto], PassResult]) -> Callable[[onnx.ModelProto], PassResult]:
        if name in _PASSES:
            raise ValueError(f"graph pass {name!r} is registered twice")
        _PASSES[name] = GraphPass(name, fn, targets)
        return fn

    return decorator


def list_passes(target: str | None = None) -> list[str]:
    return [p.name for p in _PASSES.values() if target is None or target in p.targets]


def run_passes(
    model: onnx.ModelProto,
    target: str = "portable",
    *,
    skip: Iterable[str] = (),
    max_rounds: int = 10,
) -> dict[str, int]:
    """Apply every pass of ``target`` in place until none changes anything (at most ``max_rounds``).

    Dead nodes and unused initializers are removed after each pass. Returns the total number of
    changes per pass.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    skip = set(skip)
    unknown = skip - set(_PASSES)
    if unknown:
        raise ValueError(f"unknown pass {sorted(unknown)[0]!r}; passes: {', '.join(_PASSES)}")
    totals = {name: 0 for name in list_passes(target) if name not in skip}
    for _ in range(max_rounds):
        changed = 0
        for name in totals:
            result = _PASSES[name].fn(model)
            remove_dead_nodes(model.graph)
            remove_unused_initializers(model.graph)
            totals[name] += result.changes
            changed += result.changes
        if not changed:
            break
    return totals
