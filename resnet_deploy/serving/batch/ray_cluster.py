"""The Ray cluster a job runs on (``--engine ray``): the address to join and whether it answers,
joining it or starting a local Ray, and how its CPUs are shared between decoding and inference."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
from typing import Any

from ..._errors import RuntimeBackendError, first_line
from ...runtime import cpu_count

__all__ = ["RayLayout", "ray_layout", "connect", "check_ray_address", "RAY_ADDRESS"]

RAY_ADDRESS = "RAY_ADDRESS"  # Ray's own variable for the cluster to join


@dataclasses.dataclass(frozen=True)
class RayLayout:
    """``actors`` Predictors of ``threads`` intra-op threads (and as many CPUs reserved) each; the
    rest of the cluster's ``cpus`` decodes."""

    cpus: int
    actors: int
    threads: int


def ray_layout(cpus: int, *, workers: int | None = None, threads: int | None = None) -> RayLayout:
    """How the cluster's CPUs are shared: by default half decode, half infer (as the local engine
    does), and never all of them to the actors: at least one CPU is left to the readers."""
    readers = workers if workers is not None else max(1, cpus // 2)
    for_actors = max(1, cpus - max(1, readers))
    per_actor = min(threads or for_actors, for_actors)
    actors = max(1, for_actors // per_actor)
    if cpus > 1 and actors * per_actor >= cpus:  # one CPU in all: Ray still runs a task beside the actor
        actors, per_actor = 1, max(1, cpus - 1)
    return RayLayout(cpus, actors, per_actor)


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local Ray on this
    machine's cores. Returns whether this call started it (and so stops it)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get(RAY_ADDRESS) or None  # checked by check_ray_address before the job began
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    on_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, **kwargs) if address else ray.init(num_cpus=cpu_count(), **kwargs)
    except Exception as exc:  # ConnectionError, a refused address, a version mismatch
        raise RuntimeBackendError(f"could not {'join the Ray cluster at ' + address if address else 'start Ray'}: "
                                  f"{first_line(exc)}") from None
    finally:
        _keep_sigterm(on_sigterm)
    return True


def _keep_sigterm(handler: Any) -> None:
    """Put back the caller's SIGTERM handler, which ray.init replaces with ``sys.exit(15)`` and
    then its core worker with a native one that prints a stack dump: the command's own (a clean
    unwinding, exit 130, as on Ctrl-C) applies to a Ray job as to any other."""
    if threading.current_thread() is threading.main_thread() and handler is not None:
        signal.signal(signal.SIGTERM, handler)


def check_ray_address(address: str | None) -> None:
    """The cluster address to join (``address``, else ``RAY_ADDRESS``) answers, checked in a few
    seconds: ray.init retries an address that refuses for minutes, printing Ray's native warnings
    as it goes. Nothing to check for a local Ray."""
    import socket
    from urllib.parse import urlsplit

    address = address or os.environ.get(RAY_ADDRESS) or None
    if not address or address == "auto" or address.startswith("local"):
        return
    target = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        port = target.port or 6379  # a bare host: Ray's default GCS port
    except ValueError:
        raise RuntimeBackendError(f"--ray-address {address!r} is not host:port (or ray://host:port)") from None
    try:
        with socket.create_connection((target.hostname or "127.0.0.1", port), timeout=5):
            pass
    except OSError as exc:
        raise RuntimeBackendError(f"no Ray cluster answers at {address}: {exc.strerror or exc}") from None
