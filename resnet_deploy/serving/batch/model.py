"""The model of a job: its Predictor, and the facts the rows and the manifest depend on.

A job records the digest of the model it ran (the manifest refuses another model on resume,
every row carries it) and what the model answers: class scores or an embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

from ..._errors import OnnxModelError
from ..._hashing import file_sha256
from ...graph.embedding import is_features_file
from ...graph.io import model_sha256
from ...runtime import Predictor, cpu_count
from .options import BatchOptions

__all__ = ["ModelFacts", "open_model", "output_kind"]


@dataclass(frozen=True)
class ModelFacts:
    """What rows depend on. ``width`` is the number of classes, or the embedding's size."""

    sha256: str
    kind: str  # "logits" or "embedding"
    width: int | None
    source: str  # the model file as given, or the profile's model
    profile_sha256: str | None
    provider: str
    threads: int  # the session's intra-op threads


def output_kind(predictor: Predictor) -> str:
    """``embedding`` for a features file (``export --features``), else ``logits``.

    A Predictor that knows it says so (``output_kind``); one that does not is asked the same
    question its metadata answers: ``output`` = ``embedding``."""
    kind = getattr(predictor, "output_kind", None)
    if kind is None:
        kind = "embedding" if is_features_file(predictor.metadata) else "logits"
    return str(kind)


def open_model(options: BatchOptions, threads: int | None, *,
               for_facts_only: bool = False) -> tuple[Predictor, ModelFacts]:
    """The Predictor of ``options`` (the file, or the profile's configuration) and its facts.

    Args:
        threads: intra-op threads for a model file; a profile brings its own.
        for_facts_only: the model on this machine's CPU, whatever machine the profiles are for
            (a Ray driver: its actors open the deployment); several profiles must name one model.
    """
    if for_facts_only:
        return _facts_only(options, threads or 1)
    if options.profile is not None:
        predictor = Predictor.from_profile(options.profile)
        digest, profile_digest = predictor.profile.model_sha256, file_sha256(options.profile)
        source = str(predictor.model_path)
        threads = predictor.profile.session.threads
    else:
        model = cast(Path, options.model)  # BatchOptions holds a model or a profile
        digest, profile_digest, source = model_sha256(model), None, str(model)
        predictor = Predictor(model, provider=options.provider, threads=threads)
    kind = output_kind(predictor)
    if kind == "embedding" and predictor.num_outputs is None:
        predictor.close()
        raise OnnxModelError(f"{source}: the embedding's size is not fixed in the graph (output "
                             f"{predictor.output_name!r}); a Parquet column of fixed-size vectors needs it")
    facts = ModelFacts(digest, kind, predictor.num_outputs, source, profile_digest, predictor.provider,
                       threads or cpu_count())
    return predictor, facts


def _facts_only(options: BatchOptions, threads: int) -> tuple[Predictor, ModelFacts]:
    from ...profile import load_profile

    profiles = ((options.profile,) if options.profile else ()) + options.profiles
    models = {}
    for path in profiles:  # not checked for this machine: they are for the cluster's
        profile = load_profile(path, check_machine=False, check_model=False)
        models[profile.model_sha256] = profile.model_path(path)
    if len(models) > 1:
        raise OnnxModelError(f"the profiles {', '.join(map(str, profiles))} are for {len(models)} different models; "
                             "one job runs one model")
    model = next(iter(models.values())) if models else cast(Path, options.model)
    digest = model_sha256(model)
    if models and digest not in models:
        raise OnnxModelError(f"{model} changed since it was tuned: its SHA-256 is not the profile's")
    predictor = Predictor(model, provider="cpu", threads=threads)
    kind = output_kind(predictor)
    profile_digest = file_sha256(profiles[0]) if profiles else None
    return predictor, ModelFacts(digest, kind, predictor.num_outputs, str(model), profile_digest, "cpu", threads)
