"""``serve``: one model in a Triton server on this machine, watched until it stops.

The entry is written to a repository of its own (removed at the end), the server started, and
then the model's health watched: a Python-backend stub that died (a request can kill one before
``model.py`` runs, while ``/ready`` still says 200) brings a restart of the server
(:meth:`TritonServer.restart` says why not a reload), at most :data:`MAX_RESTARTS` within
:data:`DEATH_WINDOW_S`, after which serve stops with the reason; and a server that exits by
itself is a :class:`TritonServerError` naming its exit (a crash with its signal).
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..._errors import InputError
from ..._owned import owned_tempdir
from ...runtime.session import check_threads
from .options import TritonEntry, TritonOptions, validate
from .process import check_host
from .repository import write_triton_repository
from .server import TritonServer, TritonServerError, find_tritonserver

__all__ = ["Listen", "serve_model"]

POLL_S = 0.2  # how often the model's health is read
# A model that dies more often than this within the window is being killed on purpose (or cannot
# live): serve stops with the reason, for a supervisor to see, rather than restart forever.
MAX_RESTARTS = 3
DEATH_WINDOW_S = 60.0


@dataclass(frozen=True)
class Listen:
    """Where the server listens: ``host`` for every protocol, ``http_host`` for HTTP/REST alone."""

    host: str = "127.0.0.1"
    http_host: str | None = None
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002


def check_listen(listen: Listen) -> None:
    """Ports in range and distinct, and addresses a server can bind (before any work)."""
    ports = {"--http-port": listen.http_port, "--grpc-port": listen.grpc_port, "--metrics-port": listen.metrics_port}
    for flag, port in ports.items():
        if not 1 <= port <= 65535:
            raise InputError(f"{flag} must be from 1 to 65535, received {port}")
    if len(set(ports.values())) < 3:
        raise InputError("--http-port, --grpc-port and --metrics-port must differ")
    for address in {listen.host, listen.http_host or listen.host}:
        check_host(address)


def serve_model(model: str | Path, options: TritonOptions, listen: Listen = Listen(), *,
                on_ready: Callable[[TritonServer, TritonEntry], None], on_warning: Callable[[str], None],
                on_stopping: Callable[[], None] = lambda: None) -> None:
    """Serve ``model`` as ``options`` say until Ctrl-C (``KeyboardInterrupt``, after which this
    returns) or the server's own exit (raised). ``on_ready`` hears where it answers, and
    ``on_warning`` each risk and each restart for a dead model."""
    check_listen(listen)
    validate(options)  # before any work, and before asking whether Triton is installed
    check_threads(options.threads, "--threads")  # this machine's cores (a profile's was checked by its name)
    find_tritonserver()  # before any work: the extra is installed
    with owned_tempdir("resnet-deploy-serve-") as repository:
        entry = write_triton_repository(model, repository, options)
        server = TritonServer(repository, host=listen.host, http_host=listen.http_host, http_port=listen.http_port,
                              grpc_port=listen.grpc_port, metrics_port=listen.metrics_port)
        try:
            server.start()
            if (risk := server.http_warning()) is not None:
                on_warning(risk)
            on_ready(server, entry)
            _watch(server, entry.path.name, on_warning)
        except KeyboardInterrupt:
            on_stopping()
        finally:
            with _signals_ignored():  # a second Ctrl-C must not cut the shutdown short
                server.stop()


def _watch(server: TritonServer, name: str, on_warning: Callable[[str], None]) -> None:
    deaths: list[float] = []  # when the model's stubs died, within the last DEATH_WINDOW_S
    while server.running():
        if (dead := server.dead_model()) is not None:  # Triton would answer 500 forever, ready all along
            now = time.monotonic()
            deaths = [t for t in deaths if now - t < DEATH_WINDOW_S] + [now]
            if len(deaths) > MAX_RESTARTS:
                raise TritonServerError(f"{dead}; {name} died {len(deaths)} times within {DEATH_WINDOW_S:.0f} s, "
                                        "so serve stops rather than restart it again")
            server.restart()  # not a reload: Triton keeps a dead stub's memory until the server exits
            on_warning(f"{dead}; restarted the server, {name} answers again")
        time.sleep(POLL_S)
    raise TritonServerError(server.exit_reason(server.stop()))  # a crash says so, with its signal


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {sig: signal.getsignal(sig) for sig in signals}
    for sig in signals:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
