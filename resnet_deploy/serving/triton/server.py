"""A real Triton Inference Server on this machine, from the ``nvidia-pytriton`` wheel.

The wheel (the ``serve`` extra) ships Triton's ``tritonserver`` binary with the Python backend
only. :class:`TritonServer` lays out a backend folder for it (:mod:`.wheel`), starts the
server on 127.0.0.1 with a strict model config, waits until it is ready or says why not, and
stops it with nothing left running (:mod:`.leftovers` removes what a run cut short left). Extra
Python-based backends (a folder holding ``model.py``) can be added by name. The wheel pins
``numpy<2``: install it in an environment of its own.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from . import log as triton_log
from ..._owned import die_with_parent, owned_folder
from .leftovers import remove_shm, remove_stale_shm, shm_prefix
from .probe import answering_id, http_status
from .process import (TritonServerError, check_host, check_port_free, free_port, group_processes,
                      wait_group_gone)
from .wheel import backend_folder, find_tritonserver, library_path

__all__ = ["TritonServer", "TritonServerError", "find_tritonserver", "free_port"]

# The APIs that change the server rather than ask it: load and unload models, map shared memory,
# write trace and log files where the caller says. Any client that reaches a port could use them;
# only a caller that sends this run's key may.
ADMIN_APIS = "model-repository,shared-memory,trace,logging"
ADMIN_HEADER = "resnet-deploy-admin-key"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
STUB = "triton_python_backend_stub"


@dataclass
class TritonServer:
    """``with TritonServer(repo) as server:`` -- ``server.http`` and ``server.grpc`` are ``host:port``."""

    repository: Path
    backends: dict[str, Path] = field(default_factory=dict)  # name -> folder holding model.py
    host: str = "127.0.0.1"
    http_host: str | None = None  # HTTP/REST's own address (None: host); gRPC and metrics bind host
    http_port: int = 0  # 0: a free port
    grpc_port: int = 0
    metrics_port: int = 0
    strict: bool = True
    ready_timeout_s: float = READY_TIMEOUT_S
    log_path: Path | None = None
    _process: subprocess.Popen[bytes] | None = None
    _workdir: Path | None = None
    _log_text: str = ""
    _stubs: set[int] = field(default_factory=set)
    _token: str = ""  # this run's: the server's --id, and its shared-memory prefix
    _admin_key: str = ""  # this run's: the header value that opens ADMIN_APIS

    @property
    def http(self) -> str:
        return f"{self.http_host or self.host}:{self.http_port}"

    def http_warning(self) -> str | None:
        """Why HTTP/REST on a network address is a risk, else None. Triton 2.51 parses a request's
        JSON recursively: one request nested tens of thousands deep crashes the whole server
        (SIGSEGV; upstream, fixed in triton-inference-server/common#156). gRPC has no such parser."""
        address = self.http_host or self.host
        if ipaddress.ip_address(address).is_loopback:
            return None
        return (f"HTTP/REST listens on {address}:{self.http_port}: one request of deeply nested JSON from any client "
                "that reaches it crashes Triton 2.51; --http-host 127.0.0.1 keeps HTTP on this machine, or put an "
                "authenticating proxy in front (docs/serving.md, 'Exposing the server')")

    @property
    def server_id(self) -> str:
        """The ``--id`` this run gives Triton, which ``GET /v2`` answers: readiness is checked
        against it, so another server on the same ports never answers for ours."""
        return f"resnet-deploy-{os.getpid()}-{self._token}"

    @property
    def shm_prefix(self) -> str:
        return shm_prefix(self._token) if self._token else ""

    @property
    def grpc(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def command(self, backend_dir: Path) -> list[str]:
        root = find_tritonserver()
        return [
            str(root / "bin" / "tritonserver"), f"--model-repository={self.repository}",
            f"--backend-directory={backend_dir}",
            f"--id={self.server_id}", f"--http-address={self.http_host or self.host}", f"--http-port={self.http_port}",
            f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
            f"--strict-model-config={'true' if self.strict else 'false'}",
            *(["--disable-auto-complete-config"] if self.strict else []),
            "--exit-timeout-secs=5", "--log-verbose=0",
            f"--http-restricted-api={ADMIN_APIS}:{ADMIN_HEADER}={self._admin_key}",
            f"--grpc-restricted-protocol={ADMIN_APIS}:{ADMIN_HEADER}={self._admin_key}",
            # Our name on the Python backend's shared-memory regions (and on those of Python-based
            # backends), so that stop() and the next run remove ours and only ours.
            *(f"--backend-config={name},shm-region-prefix-name={self.shm_prefix}"
              for name in ("python", *self.backends)),
        ]

    def start(self) -> "TritonServer":
        root = find_tritonserver()
        if not self.repository.is_dir():
            raise TritonServerError(f"model repository not found: {self.repository}")
        http_host = self.http_host or self.host
        for address in {self.host, http_host}:
            check_host(address)
        self.http_port, self.grpc_port, self.metrics_port = (
            p or free_port() for p in (self.http_port, self.grpc_port, self.metrics_port))
        for address, port in ((http_host, self.http_port), (self.host, self.grpc_port), (self.host, self.metrics_port)):
            check_port_free(address, port)
        remove_stale_shm()
        self._token, self._admin_key = secrets.token_hex(4), secrets.token_hex(16)
        self._workdir = owned_folder("resnet-deploy-triton-")
        backend_folder(root, self._workdir / "backends", self.backends)
        self.log_path = self.log_path or self._workdir / "tritonserver.log"
        env = dict(os.environ, LD_LIBRARY_PATH=library_path(root),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(self.command(self._workdir / "backends"), stdout=log,
                                             stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                             preexec_fn=die_with_parent)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise TritonServerError(self.exit_reason(self._process.returncode))
            if http_status(self.http, "/v2/health/ready") == 200 and answering_id(self.http) == self.server_id:
                self._stubs = group_processes(self._process.pid, STUB) if self._process is not None else set()
                return
            time.sleep(0.1)
        raise TritonServerError(f"tritonserver was not ready after {self.ready_timeout_s:.0f} s: {self.reason()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return self._log_text

    def reason(self) -> str:
        """The server's own words for what went wrong, in one line (:func:`.log.reason`)."""
        return triton_log.reason(self.log())

    def exit_reason(self, code: int | None) -> str:
        """How the server ended with ``code`` (its exit status, or minus a signal): a crash is
        named as one, with the signal and the log's last lines (:func:`.log.exit_reason`)."""
        return triton_log.exit_reason(code, self.log())

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``; the whole process group goes."""
        process, self._process = self._process, None
        code = None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                code = process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                code = process.wait()
            with contextlib.suppress(ProcessLookupError):  # stubs that outlived the server
                os.killpg(process.pid, signal.SIGKILL)
            wait_group_gone(process.pid, STOP_TIMEOUT_S)
        if self._token:
            remove_shm(self.shm_prefix)
        if self._workdir is not None:
            self._log_text = self.log()  # the log may live in the work folder: keep its words
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        return code

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def restart(self) -> int | None:
        """Stop the server and start it again, on the same ports and repository, with a new run
        token; how the old one ended. This is what brings back a model whose Python stub died:
        Triton 2.51 never finishes unloading such a model's instance, so an unload and load
        (explicit model control) would leave the dead stub's shared-memory region (as large as
        the largest request it took) mapped in tritonserver, with its threads and a zombie, for
        as long as the server runs, and the next stop would wait out the exit timeout. A new process
        gives all of it back; :meth:`stop` removes the old run's regions."""
        own_log = self._workdir is not None and self.log_path is not None and self.log_path.parent == self._workdir
        code = self.stop()
        if own_log:
            self.log_path = None  # it lived in the old run's work folder
        self.start()
        return code

    def dead_model(self) -> str | None:
        """Why a model can no longer answer though the server runs, else None. A Python-backend
        stub that died leaves its model answering 500 to every request while Triton's readiness
        endpoints still say 200: we watch the stubs that were there when the server became ready."""
        if self._process is None or not self._stubs:
            return None
        gone = self._stubs - group_processes(self._process.pid, STUB)
        if not gone:
            return None
        said = triton_log.stub_death(self.log())
        return f"a model's Python stub (pid {min(gone)}) died" + (f": {said}" if said else "")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
