"""A deployment profile as a Triton entry's options: what ``triton --profile`` and ``serve
--profile`` serve, decided here once (the model the profile names, the entry's name, its provider,
threads, fp16, the instances tune measured, and the backend that serves it as tuned)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..._errors import InputError
from ...profile.deployment import DeploymentProfile, load_profile
from ...runtime.session import check_threads
from .options import MAX_INSTANCES, MAX_THREADS, TritonOptions, entry_name
from .repository import profile_backend

__all__ = ["TunedEntry", "options_from_profile"]


@dataclass(frozen=True)
class TunedEntry:
    """What an entry for a profile serves: the profile, its model file, the options, and notes
    on what the entry does that the caller did not say."""

    profile: DeploymentProfile
    model: Path
    options: TritonOptions
    notes: list[str] = field(default_factory=list)


def options_from_profile(profile_path: str | Path, options: TritonOptions, *, backend: str = "auto",
                         provider: str | None = None, instances: int | None = None) -> TunedEntry:
    """``options`` completed from the profile at ``profile_path``: what the caller set (a name,
    threads, ``instances``) stays; the rest is the profile's (instances: the layout tune --mode
    throughput measured, else ``options.instances``). ``backend="auto"`` picks the backend that
    serves the profile as tuned (:func:`~.repository.profile_backend`)."""
    if provider is not None:
        raise InputError("--profile names its provider (the one tune measured); drop --provider")
    tuned = load_profile(profile_path, check_model=False)  # write_triton_repository hashes the bytes it writes, once
    model = tuned.model_path(profile_path)
    notes: list[str] = []
    threads = options.threads if options.threads is not None else tuned.session.threads
    if options.threads is None and threads is not None:  # the profile's, named as its field
        if not (isinstance(threads, int) and 1 <= threads <= MAX_THREADS):
            raise InputError(f"{profile_path}: session.threads must be an integer from 1 to {MAX_THREADS}, "
                             f"received {threads!r}")
        check_threads(threads, f"{profile_path}: session.threads")  # load_profile refused another machine's
    if instances is None and tuned.serving:  # tune --mode throughput measured this layout
        instances = tuned.serving.instances
        if not 1 <= instances <= MAX_INSTANCES:  # named as the profile's field: the user gave no --instances
            raise InputError(f"{profile_path}: serving.instances must be an integer from 1 to {MAX_INSTANCES}, "
                             f"received {instances!r} (pass --instances to serve fewer)")
        each = threads if threads is not None else "all"
        notes.append(f"{instances} instance{'s' if instances != 1 else ''} x {each} "
                     f"thread{'s' if each != 1 else ''} each, as tune --mode throughput measured "
                     f"({tuned.serving.images_per_s or 0:.0f} images/s, p99 {tuned.serving.p99_ms or 0:.2f} ms)")
    needed, why = profile_backend(tuned)
    if backend == "auto":
        backend = needed
        notes += [why] if why else []
    elif backend == "onnxruntime" and why:
        notes.append(f"--backend onnxruntime: the entry does NOT serve the profile as tuned; {why.split(':')[0]}")
    fp16 = (options.fp16 or tuned.session.fp16) and backend != "python"  # inside the profile for python
    name = options.name or entry_name(tuned.source_model or model)
    completed = dataclasses.replace(options, name=name, provider=tuned.provider, threads=threads,
                                    instances=options.instances if instances is None else instances,
                                    fp16=fp16, backend=backend, profile=profile_path)
    return TunedEntry(tuned, model, completed, notes)
