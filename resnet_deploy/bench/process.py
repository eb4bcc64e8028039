"""The parent's side of one benchmark worker: a ``python -m resnet_deploy.bench.worker`` child
process, and the line protocol of :mod:`.schema` messages it speaks on stdin and stdout."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .schema import PARENT_ENV, Failure, WorkerSpec, decode, encode

__all__ = ["WorkerProcess", "WorkerError", "START_TIMEOUT_S"]

START_TIMEOUT_S = 900.0  # torch.compile and TensorRT engine builds are slow


class WorkerError(Exception):
    """A worker failed, died or did not answer; the engine's record carries the message.
    ``engine_gone``: the worker said its engine cannot answer again in this run."""

    def __init__(self, message: str, *, engine_gone: bool = False) -> None:
        super().__init__(message)
        self.engine_gone = engine_gone


class WorkerProcess:
    """A ``python -m resnet_deploy.bench.worker`` child and its line protocol."""

    def __init__(self, spec: WorkerSpec, workdir: Path, tag: str) -> None:
        spec_path = workdir / f"spec-{tag}.json"
        spec_path.write_text(spec.to_json())
        self.stderr_path = workdir / f"stderr-{tag}.txt"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "resnet_deploy.bench.worker", str(spec_path)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                # The worker asks for SIGTERM when bench dies (a preexec_fn would run gRPC's fork
                # handlers in the child, which abort where bench has a gRPC channel open).
                env={**os.environ, "PYTHONWARNINGS": "ignore", PARENT_ENV: str(os.getpid())},
            )
        self._buffer = bytearray()

    def ask(self, message: Any, timeout: float) -> Any:
        self.send(message)
        return self.receive(timeout)

    def send(self, message: Any) -> None:
        try:
            self.proc.stdin.write((encode(message) + "\n").encode())  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            raise WorkerError(self._death()) from None

    def receive(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerError(f"no answer within {timeout:.0f}s")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise WorkerError(self._death())
                self._buffer += chunk
        end = self._buffer.index(b"\n")
        line = bytes(self._buffer[:end]).decode()
        del self._buffer[: end + 1]
        message = decode(line)
        if isinstance(message, Failure):
            raise WorkerError(message.error, engine_gone=message.engine_gone)
        return message

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            return "the worker stopped answering"
        lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
        return f"worker exited with {code}: {lines[-1][:300] if lines else 'no output'}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
