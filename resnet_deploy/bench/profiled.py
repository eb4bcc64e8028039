"""``bench --profile P``: the in-process engine is the one a deployment profile configures.

``serve --profile P`` and ``triton --profile P`` serve the profile's model file in the profile's
configuration (its provider, runtime, precision hint, threads). A load test that measured the file
as it is on the CPU provider beside it compared two different products: tune had measured the
winner at 48.7 ms p50 and the in-process file ran at 102 ms, so the served model came out 1.71x
"faster than in process". With ``--profile`` the in-process engine is the profile's own: its file,
its session options and, unless ``--threads`` says otherwise, its threads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .._errors import InputError
from .._names import OPENVINO_RUNTIME
from ..profile.deployment import DeploymentProfile, load_profile
from .options import BenchOptions
from .schema import Engine

__all__ = ["with_profile", "profile_engine"]


def with_profile(options: BenchOptions) -> BenchOptions:
    """``options`` with the profile's model file as the one file, and its threads unless given.
    The profile is checked as ``Predictor.from_profile`` checks it: this machine, the model's digest."""
    if options.profile is None:
        return options
    if options.files:
        raise InputError("--profile names the model file to measure; give it or ONNX files, not both")
    profile = load_profile(options.profile)
    threads = options.threads if options.threads is not None else profile.session.threads
    return dataclasses.replace(options, files=(profile.model_path(options.profile),), threads=threads)


def profile_engine(profile_path: str | Path, name: str) -> Engine:
    """The engine that runs the profile's file as the profile configures it, named ``name``."""
    profile = load_profile(profile_path, check_model=False)  # with_profile checked its digest
    backend = OPENVINO_RUNTIME if profile.backend == OPENVINO_RUNTIME else "onnxruntime"
    return Engine(f"{name}-profile", backend, profile.provider, profile.precision,
                  str(profile.model_path(profile_path)), _session_options(profile),
                  f"{Path(profile_path).name}: {profile.engine} as tuned ({profile.provider}, {profile.precision})")


def _session_options(profile: DeploymentProfile) -> dict[str, object]:
    """The profile's session fields that differ from the defaults, threads aside (the worker's)."""
    fields = profile.to_json()["session"]
    return {k: v for k, v in fields.items() if k != "threads"}
