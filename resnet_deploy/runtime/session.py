"""onnxruntime sessions: options, creation on a provider, and node placement from a profile.

After a session is created, ``session.get_providers()`` must contain the provider asked for
(plugin EPs, which it does not list, must run at least one node), and on accelerators the
node-level placement (which provider runs how many nodes) is read from an onnxruntime profile
of that same session, so that onnxruntime's per-node fallbacks to the CPU are visible.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Union, cast

import numpy as np
import onnx
import onnxruntime as ort

from .._errors import ProviderUnavailableError, RuntimeBackendError, first_line
from .._owned import owned_folder
from .config import ORT_NUMPY_TYPES, SessionConfig
from .openvino_native import OpenVINOSession
from .providers import (
    PROVIDERS, openvino_backend, openvino_options, openvino_plugin_devices, preload_cuda_libraries,
    provider_list, resolve_provider,
)

__all__ = [
    "Session",
    "SessionConfig",
    "create_session",
    "open_session",
    "open_openvino_runtime",
    "node_placement",
    "cpu_count",
    "PLACEMENT_CHECKED",
]

# Providers whose node placement a Predictor reads by default: an accelerator may leave nodes on
# the CPU, and onnxruntime does that without a word at the default log level.
PLACEMENT_CHECKED = frozenset({"cuda", "tensorrt", "openvino"})


# What open_session returns: an onnxruntime session, or the OpenVINO runtime behind the same
# get_inputs/get_outputs/run surface.
Session = Union[ort.InferenceSession, OpenVINOSession]

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the host's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# More threads than this buy nothing and cost a native stack each: `--threads 99999` started
# 14,500 threads and 16.8 GB, and nothing refused it.
THREADS_PER_CORE = 4


def check_threads(threads: int | None, name: str = "threads") -> None:
    """Refuse a thread count below 1 or above ``THREADS_PER_CORE`` x the cores this process may
    use; ``name`` is what the refusal calls the setting (``--threads``, a profile's field)."""
    if threads is None:
        return
    cores = cpu_count()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise RuntimeBackendError(f"{name} must be at least 1, received {threads!r}")
    if threads > THREADS_PER_CORE * cores:
        raise RuntimeBackendError(
            f"{name} must be at most {THREADS_PER_CORE * cores} "
            f"({THREADS_PER_CORE}x the {cores} cores this process may use), "
            f"received {threads}"
        )


def _session_options(config: SessionConfig) -> ort.SessionOptions:
    so = ort.SessionOptions()
    if config.optimization not in _OPT_LEVELS:
        raise RuntimeBackendError(f"unknown optimization level {config.optimization!r}; "
                                  f"expected {', '.join(_OPT_LEVELS)}")
    so.graph_optimization_level = _OPT_LEVELS[config.optimization]
    check_threads(config.threads)
    so.intra_op_num_threads = config.threads or cpu_count()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only; placement is reported by the profile
    if config.profile_dir:
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(config.profile_dir) / "ort_profile")
    return so


def create_session(model: str | Path | bytes, config: SessionConfig | None = None) -> tuple[Session, str]:
    """Create an ``InferenceSession`` on the configured provider; returns it with the provider's short name."""
    session, short, _ = open_session(model, config)
    return session, short


def open_session(
    model: str | Path | bytes, config: SessionConfig | None = None, *, placement: bool = False
) -> tuple[Session, str, Counter[str] | None]:
    """:func:`create_session`, plus the node placement when ``placement`` is asked for on a
    provider of :data:`PLACEMENT_CHECKED` (or needed to verify a plugin EP).

    The placement comes from a profile of this very session over one run of zeros: one session,
    one cuDNN search, one TensorRT engine build. Not with ``cuda_graph``: that run would spend
    the regular runs onnxruntime needs before capturing a graph on a shape the caller may not
    use, and onnxruntime refuses CUDA graphs anyway unless every compute node is on the CUDA EP.
    Nor when ``config.profile_dir`` is set: that profile is the caller's.
    """
    config = config or SessionConfig()
    check_threads(config.threads)
    short = resolve_provider(config.provider)
    if short == "openvino" and openvino_backend() == "runtime":
        return open_openvino_runtime(model, config), short, None
    plugin = short == "openvino" and bool(openvino_plugin_devices())
    probe = not config.profile_dir and (plugin or (placement and short in PLACEMENT_CHECKED))
    if config.cuda_graph and short == "cuda":
        probe = False
    return _open(model, config, short, plugin=plugin, probe=probe)


def node_placement(model: str | Path | bytes, config: SessionConfig | None = None, *, batch: int = 1) -> Counter[str]:
    """How many graph nodes each provider runs, read from an onnxruntime profile of one run."""
    config = replace(config or SessionConfig(), cuda_graph=False, profile_dir=None)
    short = resolve_provider(config.provider)
    if short == "openvino" and openvino_backend() == "runtime":
        # OpenVINO compiles the whole graph for its CPU plugin or refuses it: no per-node split.
        open_openvino_runtime(model, config)
        source = (onnx.load_from_string(model) if isinstance(model, bytes)
                  else onnx.load(str(model), load_external_data=False))
        return Counter({OPENVINO_PLACEMENT: len(source.graph.node)})
    plugin = short == "openvino" and bool(openvino_plugin_devices())
    return cast(Counter[str], _open(model, config, short, plugin=plugin, probe=True, batch=batch)[2])


OPENVINO_PLACEMENT = "OpenVINO runtime (CPU)"  # where its nodes run, in a placement count


def open_openvino_runtime(model: str | Path | bytes, config: SessionConfig) -> OpenVINOSession:
    """The ``openvino`` package itself, where onnxruntime's plugin has no device (AMD CPUs): the
    one place such a session is made, for a Predictor and for the benchmark alike."""
    precision = "bf16" if (config.openvino_precision or "").upper() == "BF16" else "fp32"
    return OpenVINOSession(model, threads=config.threads or cpu_count(), precision=precision, batch=config.static_batch,
                           streams=config.streams)


def _open(
    model: str | Path | bytes, config: SessionConfig, short: str, *, plugin: bool, probe: bool, batch: int = 1
) -> tuple[ort.InferenceSession, str, Counter[str] | None]:
    if short in ("cuda", "tensorrt"):
        preload_cuda_libraries()
    so = _session_options(config)
    source = model if isinstance(model, bytes) else str(model)
    profile_dir = str(owned_folder("resnet-deploy-profile-")) if probe else None
    try:
        if profile_dir:
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(profile_dir) / "ort_profile")
        try:
            if plugin:
                # The plugin package: attach through the EP-device API (onnxruntime >= 1.22).
                so.add_provider_for_devices(openvino_plugin_devices()[:1], openvino_options(config))
                session = ort.InferenceSession(source, sess_options=so)
            else:
                session = ort.InferenceSession(source, sess_options=so, providers=provider_list(short, config))
        except Exception as exc:  # onnxruntime's pybind errors share no useful base class
            raise RuntimeBackendError(f"onnxruntime could not create a {short} session: {first_line(exc)}") from exc
        counts = _profiled_placement(session, batch) if profile_dir else None
    finally:
        if profile_dir:
            shutil.rmtree(profile_dir, ignore_errors=True)
    if plugin and counts is not None:
        # Plugin EPs are not listed by get_providers(): check that the plugin really runs nodes.
        if not any(name.startswith("OpenVINO") for name in counts):
            raise ProviderUnavailableError(
                f"the OpenVINO plugin ran no node (placement: {dict(counts)}); refusing to fall back silently"
            )
    elif not plugin and PROVIDERS[short] not in session.get_providers():
        raise ProviderUnavailableError(
            f"onnxruntime did not enable {PROVIDERS[short]} (session providers: "
            f"{', '.join(session.get_providers())}); refusing to fall back silently"
        )
    return session, short, counts


def _profiled_placement(session: ort.InferenceSession, batch: int) -> Counter[str]:
    """Run zeros once through a session created with profiling on, end the profile (later runs
    are not profiled) and count the nodes per provider in it."""
    feeds = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) else batch for d in inp.shape]
        # An --image-input model takes uint8 images; its symbolic height and width become 1 here: a valid 1x1 image.
        dtype = ORT_NUMPY_TYPES.get(inp.type, np.float32)
        feeds[inp.name] = np.zeros(shape, dtype=dtype)
    try:
        session.run(None, feeds)
    except Exception as exc:
        raise RuntimeBackendError(f"the placement run failed: {first_line(exc)}") from exc
    finally:
        profile = session.end_profiling()
    return placement_from_profile(json.loads(Path(profile).read_text()))


def placement_from_profile(events: list[dict]) -> Counter[str]:
    """Nodes per provider in an onnxruntime profile (each node counted once)."""
    placement: Counter[str] = Counter()
    seen: set[str] = set()
    for ev in events:
        args = ev.get("args", {})
        if ev.get("cat") == "Node" and "provider" in args and ev["name"] not in seen:
            seen.add(ev["name"])
            placement[args["provider"]] += 1
    return placement
