"""A real Triton Inference Server on this machine, from the ``nvidia-pytriton`` wheel.

The wheel (the ``serve`` extra) ships Triton's ``tritonserver`` binary with the Python backend
only. :class:`TritonServer` lays out a backend folder for it (the Python backend's library and
the stub for this interpreter, copied: Triton refuses links that leave the folder), starts the
server on 127.0.0.1 with a strict model config, waits until it is ready or says why not, and
stops it with nothing left running. Extra Python-based backends (a folder holding ``model.py``)
can be added by name. The wheel pins ``numpy<2``: install it in an environment of its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .process import (TritonServerError, check_host, check_port_free, die_with_parent, free_port, group_processes,
                      wait_group_gone)

__all__ = ["TritonServer", "TritonServerError", "find_tritonserver", "free_port"]

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
STUB = "triton_python_backend_stub"


# Errors a CPU-only machine always logs: no CUDA driver, no NVML, no DCGM.
_NOISE = ("CudaDriverHelper", "NVML", "DCGM", "pinned memory", "CUDA memory pool")
_GLOG = re.compile(r"^[EWI]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ")


def _clean(line: str) -> str:
    """A log line without glog's prefix and quotes, cut before a Python traceback (``\\n``)."""
    text = _GLOG.sub("", line.strip()).strip('"')
    return text.split("\\n")[0].strip()


def _is_error(line: str) -> bool:
    return line.lower().startswith(("error", "failed", "internal", "unavailable", "invalid")) or "error" in line.lower()


def find_tritonserver() -> Path:
    """The folder of the pip wheel's Triton (``bin/tritonserver``, ``backends/python``)."""
    try:
        import pytriton  # type: ignore[import-not-found]
    except ImportError:
        raise TritonServerError("Triton's server is not installed: pip install 'resnet-deploy[serve]' "
                                "in an environment of its own (it pins numpy<2)") from None
    root = Path(pytriton.__file__).parent / "tritonserver"
    if not (root / "bin" / "tritonserver").is_file():
        raise TritonServerError(f"nvidia-pytriton has no tritonserver binary under {root}")
    return root


def _library_path(root: Path) -> str:
    libs = root.parent.parent / "nvidia_pytriton.libs"  # auditwheel's folder beside the package
    parts = [str(libs), str(sysconfig.get_config_var("LIBDIR") or ""), os.environ.get("LD_LIBRARY_PATH", "")]
    return ":".join(p for p in parts if p)


def _backends(root: Path, folder: Path, extra: dict[str, Path]) -> None:
    python = folder / "python"
    python.mkdir(parents=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(root / "backends" / "python" / name, python / name)
    stub = root / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonServerError(f"nvidia-pytriton has no Python backend stub for Python {sys.version_info.major}."
                                f"{sys.version_info.minor}")
    shutil.copy2(stub, python / stub.name)
    for name, source in extra.items():
        shutil.copytree(source, folder / name)


@dataclass
class TritonServer:
    """``with TritonServer(repo) as server:`` -- ``server.http`` and ``server.grpc`` are ``host:port``."""

    repository: Path
    backends: dict[str, Path] = field(default_factory=dict)  # name -> folder holding model.py
    host: str = "127.0.0.1"
    http_port: int = 0  # 0: a free port
    grpc_port: int = 0
    metrics_port: int = 0
    strict: bool = True
    ready_timeout_s: float = READY_TIMEOUT_S
    log_path: Path | None = None
    reloadable: bool = False  # explicit model control: reload() can bring back a model whose stub died
    _process: subprocess.Popen[bytes] | None = None
    _workdir: Path | None = None
    _log_text: str = ""
    _stubs: set[int] = field(default_factory=set)

    @property
    def http(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def command(self, backend_dir: Path) -> list[str]:
        root = find_tritonserver()
        return [
            str(root / "bin" / "tritonserver"), f"--model-repository={self.repository}", f"--backend-directory={backend_dir}",
            f"--http-address={self.host}", f"--http-port={self.http_port}",
            f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
            f"--strict-model-config={'true' if self.strict else 'false'}",
            *(["--disable-auto-complete-config"] if self.strict else []),
            "--exit-timeout-secs=5", "--log-verbose=0",
            *(["--model-control-mode=explicit", "--load-model=*"] if self.reloadable else []),
        ]

    def start(self) -> "TritonServer":
        root = find_tritonserver()
        if not self.repository.is_dir():
            raise TritonServerError(f"model repository not found: {self.repository}")
        check_host(self.host)
        self.http_port, self.grpc_port, self.metrics_port = (p or free_port() for p in (self.http_port, self.grpc_port, self.metrics_port))
        for port in (self.http_port, self.grpc_port, self.metrics_port):  # else another server's "ready" could answer
            check_port_free(self.host, port)
        self._workdir = Path(tempfile.mkdtemp(prefix="resnet-deploy-triton-"))
        _backends(root, self._workdir / "backends", self.backends)
        self.log_path = self.log_path or self._workdir / "tritonserver.log"
        env = dict(os.environ, LD_LIBRARY_PATH=_library_path(root),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(self.command(self._workdir / "backends"), stdout=log, stderr=subprocess.STDOUT,
                                             env=env, start_new_session=True, preexec_fn=die_with_parent)
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
                raise TritonServerError(f"tritonserver exited with {self._process.returncode}: {self.reason()}")
            if self._get("/v2/health/ready") == 200:
                self._stubs = group_processes(self._process.pid, STUB) if self._process is not None else set()
                return
            time.sleep(0.1)
        raise TritonServerError(f"tritonserver was not ready after {self.ready_timeout_s:.0f} s: {self.reason()}")

    def _get(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(f"http://{self.http}{path}", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (OSError, ValueError):
            return None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return self._log_text

    def reason(self) -> str:
        """The server's own words for what went wrong, in one line: why a model failed to load,
        else its first error that is not about the GPU this machine does not have."""
        lines = [_clean(ln) for ln in self.log().splitlines() if ln.strip()]
        ranked = ([ln for ln in lines if "failed to load '" in ln or "Poll failed for model" in ln]
                  + [ln for ln in lines if _is_error(ln) and not any(n in ln for n in _NOISE)]
                  + lines[-1:])
        picked = ranked[0] if ranked else "no output"
        parse = next((ln[ln.index("Error parsing"):] for ln in lines if "Error parsing text-format" in ln), None)
        if parse and parse not in picked:  # a syntax error: protobuf says where, on a line of its own
            picked = f"{picked}: {parse}"
        return picked if len(picked) <= 400 else picked[:400] + "..."

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
        if self._workdir is not None:
            self._log_text = self.log()  # the log may live in the work folder: keep its words
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        return code

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def reload(self, name: str) -> None:
        """Unload and load ``name`` again (a load of an unchanged model is a no-op in Triton): its
        instances, and their stubs, start afresh. Needs ``reloadable``."""
        for action in ("unload", "load"):
            request = urllib.request.Request(f"http://{self.http}/v2/repository/models/{name}/{action}", data=b"{}",
                                             method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.ready_timeout_s):
                    pass
            except (OSError, ValueError) as exc:
                raise TritonServerError(f"could not {action} {name}: {exc}; {self.reason()}") from None
        if self._process is not None:
            self._stubs = group_processes(self._process.pid, STUB)

    def dead_model(self) -> str | None:
        """Why a model can no longer answer though the server runs, else None. A Python-backend
        stub that died leaves its model answering 500 to every request while Triton's readiness
        endpoints still say 200: we watch the stubs that were there when the server became ready."""
        if self._process is None or not self._stubs:
            return None
        gone = self._stubs - group_processes(self._process.pid, STUB)
        if not gone:
            return None
        lines = [_clean(ln) for ln in self.log().splitlines() if ln.strip()]
        said = next((ln.split("what():")[-1].strip() for ln in reversed(lines) if "what():" in ln or "Stub process" in ln), None)
        return f"a model's Python stub (pid {min(gone)}) died" + (f": {said}" if said else "")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
