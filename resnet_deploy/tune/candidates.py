"""tune's candidates: the ``tune`` entries of the one catalogue (:mod:`resnet_deploy.bench.catalogue`)
that this machine runs, for the providers and precisions asked for, on the files tune made."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..bench.catalogue import CATALOGUE, REFERENCE, Entry, machine_capabilities, session_fields
from ..bench.schema import Engine

__all__ = ["Candidate", "candidates", "capabilities", "made_file_engines"]


@dataclass(frozen=True)
class Candidate:
    engine: Engine  # its artifact is the path of the file it runs
    session: dict[str, Any]  # SessionConfig fields for the profile


def capabilities() -> set[str]:
    """What the ``needs`` of tune's entries may ask for here. OpenVINO runs one way: onnxruntime's
    OpenVINO EP where it is installed, the OpenVINO runtime otherwise (as Predictor runs it)."""
    caps = machine_capabilities()
    if "ov-ep" in caps:
        caps.discard("ov-runtime")
    return caps


def _runs_here(entry: Entry, caps: set[str]) -> bool:
    # tune measures bf16 only where the CPU has bf16 instructions (AVX512-BF16, AMX), on either OpenVINO.
    return entry.needs <= caps and (entry.engine.precision != "bf16" or "cpu-bf16" in caps)


def candidates(files: dict[str, Path], providers: list[str], precisions: set[str], batch: int,
               caps: set[str] | None = None) -> list[Candidate]:
    """Every configuration worth measuring here, the reference first. ``files`` maps the
    artifacts tune made (``portable``, ``int8``, ``int8_static``, ``fp16``) to their paths."""
    caps = capabilities() if caps is None else caps
    out = []
    for entry in CATALOGUE:
        e = entry.engine
        if not entry.tune or e.artifact not in files:
            continue
        if e.name != REFERENCE and not (e.provider in providers and e.precision in precisions
                                        and _runs_here(entry, caps)):
            continue
        out.append(Candidate(replace(e, artifact=str(files[e.artifact])), session_fields(e, batch)))
    return sorted(out, key=lambda c: c.engine.name != REFERENCE)


def made_file_engines() -> list[str]:
    """The names of every tune engine that runs a file tune makes (not the given fp32 file)."""
    return sorted(e.engine.name for e in CATALOGUE if e.tune and e.engine.artifact != "portable")
