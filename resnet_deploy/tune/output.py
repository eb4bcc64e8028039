"""What tune writes: the winner's model beside the profile (unless it is the given file), and
the profile; the paths it may write are checked before the measurement."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import onnx

from .. import __version__
from .._atomic import atomic_write_bytes, check_distinct, check_new, check_writable
from .._errors import OutputPathError
from .._machine import machine
from ..graph.io import model_files
from ..profile.deployment import DeploymentProfile, model_sha256, save_profile
from ..runtime.config import SessionConfig
from .serving import ServingChoice
from .candidates import made_file_engines
from .files import TUNE_MARKER
from .verdict import Verdict

if TYPE_CHECKING:
    from . import TuneOptions

__all__ = ["derived_model_paths", "check_derived_model_paths", "write_profile"]


def derived_model_paths(output: str | Path) -> list[Path]:
    """Where tune may write the winner's model beside the profile: ``<stem>.<engine>.onnx`` for
    every engine that runs a file tune makes (INT8, fp16); fp32 winners run the given file."""
    output = Path(output)
    return [output.with_name(f"{output.stem}.{name}.onnx") for name in made_file_engines()]


def check_derived_model_paths(options: TuneOptions, output: Path) -> set[Path]:
    """The winner is known only after the measurement, so every model file it may write beside
    the profile is checked before it: each name must be writable (the longest engine name makes
    the longest), none may be an input, and none may exist without force, unless it is the orphan
    of an interrupted run for this profile. Returns those orphans."""
    paths = derived_model_paths(output)
    for path in paths:
        try:
            check_writable(path)
        except OutputPathError as exc:
            raise OutputPathError(f"the model tune may write beside --output {output.name[:40]}: "
                                  f"{exc}; shorten --output") from None
    derived = {"the profile's model": paths}
    check_distinct(derived, {"MODEL": model_files(options.model), "--calibration": options.calibration,
                             "--eval-data": options.eval_data})
    orphans = {p for p in paths if _is_orphan(p, output)}
    check_new({"the profile's model": [p for p in paths if p not in orphans]}, force=options.force)
    return orphans


def _is_orphan(path: Path, output: Path) -> bool:
    """A model file tune made for ``output``, left without its profile (the run was killed)."""
    if output.exists() or not path.is_file():
        return False
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # anything unreadable is not ours to replace
        return False
    return any(p.key == TUNE_MARKER and p.value == output.name for p in model.metadata_props)


def write_profile(options: TuneOptions, output: Path, winner: Verdict, verdicts: list[Verdict], model_file: Path,
                  synthetic: bool, orphans: set[Path], serving: ServingChoice | None = None) -> DeploymentProfile:
    """Save the winner's model beside the profile (unless it is the given file) and the profile."""
    source = Path(options.model).resolve()
    if model_file.resolve() == source:
        model_ref = str(source)
    else:
        target = output.with_name(f"{output.stem}.{winner.record.engine}.onnx")
        atomic_write_bytes(target, model_file.read_bytes(), replace=options.force or target in orphans)
        model_ref = target.name
    r = winner.record
    session = SessionConfig(provider=r.provider, **{
        **winner.session, "threads": serving.best.threads if serving else options.threads or r.threads})
    profile = DeploymentProfile(
        model=model_ref,
        model_sha256=model_sha256(model_file),  # with its external data
        provider=r.provider,
        backend=winner.backend,
        precision=r.precision,
        batch_size=r.batch_size,
        session=session,
        measured={"p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "images_per_s": r.images_per_s,
                  "speedup_vs_reference": r.speedup_vs_baseline, "max_rel_error": r.max_rel_error,
                  "accuracy": r.accuracy, "synthetic_calibration": synthetic and r.precision == "int8",
                  "candidate": r.engine},
        machine=machine(),
        source_model=str(source),
        candidates=[{"engine": v.record.engine, "provider": v.record.provider, "precision": v.record.precision,
                     "p50_ms": v.record.p50_ms, "max_rel_error": v.record.max_rel_error, "accuracy": v.record.accuracy,
                     "verified": v.verified, "reason": v.reason} for v in verdicts],
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        toolkit_version=__version__,
        serving=serving.to_profile() if serving else None,
    )
    save_profile(profile, output, replace=options.force)
    for orphan in orphans - {output.with_name(f"{output.stem}.{winner.record.engine}.onnx")}:
        orphan.unlink(missing_ok=True)  # an interrupted run's model that this profile does not use
    return profile
