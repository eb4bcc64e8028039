"""The local engine's decode workers: processes of our own, spoken to over pipes.

Decoding runs in processes because PIL holds the GIL while it decodes and resizes. Each worker is
a fresh interpreter (:mod:`.worker`): nothing of the main process is forked (onnxruntime's thread
pools copied into a child are undefined behaviour), and no ``__main__`` module is re-imported
(what multiprocessing's spawn and forkserver do, which fails under ``python -`` and costs the
CLI's imports in every worker). Batch ``i`` goes to worker ``i mod n`` and its result is read
back in the same order, so results arrive in input order with no scheduler, and a worker that
dies is an error at once, never a wait.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, Sequence, cast

from ..._errors import RuntimeBackendError, first_line
from .decode import Decoded, DecodeSpec

__all__ = ["DecodePool", "WorkerDied"]


class WorkerDied(RuntimeBackendError):
    """A decode worker ended while it held work: killed (the system's memory killer, a signal) or
    crashed (a decoder's bug on one file)."""


def _environment() -> dict[str, str]:
    """The main process's environment, with this copy of the package first on the path: a
    worker decodes with the code the main process runs."""
    root = str(Path(__file__).resolve().parents[3])  # the folder holding resnet_deploy/
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


class DecodePool:
    """``workers`` decode processes, used as a context manager; :meth:`submit` batches and read
    their results with :meth:`result`, first in, first out."""

    def __init__(self, workers: int, spec: DecodeSpec) -> None:
        self._workers, self._spec = workers, spec
        self._start()

    def _start(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        self._inputs: list[IO[bytes]] = []  # each worker's stdin (tasks) and stdout (results)
        self._outputs: list[IO[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self._submitted = self._received = 0
        env = _environment()
        try:
            for _ in range(self._workers):
                log = tempfile.TemporaryFile()  # a crash's last words, never a pipe that could fill
                self._logs.append(log)
                proc = subprocess.Popen([sys.executable, "-m", "resnet_deploy.serving.batch.worker"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                                        start_new_session=True)
                self._procs.append(proc)
                self._inputs.append(cast(IO[bytes], proc.stdin))
                self._outputs.append(cast(IO[bytes], proc.stdout))
                self._send(len(self._procs) - 1, self._spec)
        except BaseException:
            self.close(kill=True)
            raise

    def __len__(self) -> int:
        return self._workers

    def _send(self, index: int, value: object) -> None:
        try:
            pickle.dump(value, self._inputs[index], protocol=pickle.HIGHEST_PROTOCOL)
            self._inputs[index].flush()
        except BrokenPipeError:
            raise self._died(index) from None

    def submit(self, paths: Sequence[str]) -> None:
        index = self._submitted % self._workers
        self._submitted += 1
        with contextlib.suppress(BrokenPipeError):  # a worker that died: result() says so in its turn
            pickle.dump(tuple(paths), self._inputs[index], protocol=pickle.HIGHEST_PROTOCOL)
            self._inputs[index].flush()

    def result(self) -> Decoded:
        """The next batch's result, in the order submitted."""
        index = self._received % len(self._procs)
        try:
            decoded = pickle.load(self._outputs[index])
        except (EOFError, pickle.UnpicklingError):
            raise self._died(index) from None
        self._received += 1
        return decoded

    def restart(self) -> None:
        """Kill every worker and start new ones: the work in flight is lost, to be submitted again."""
        self.close(kill=True)
        self._start()

    def _died(self, index: int) -> WorkerDied:
        proc, log = self._procs[index], self._logs[index]
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        if code == -signal.SIGKILL:
            how += ", perhaps by the system for lack of memory"
        log.seek(0)
        lines = log.read().decode(errors="replace").strip().splitlines()
        said = f": {first_line(RuntimeError(lines[-1]))}" if lines else ""
        return WorkerDied(f"a decode worker died ({how}){said}")

    def close(self, *, kill: bool = False) -> None:
        """Stop every worker: closing its stdin ends it; ``kill`` ends it without waiting."""
        for proc, tasks in zip(self._procs, self._inputs):
            with contextlib.suppress(BrokenPipeError):
                tasks.close()
            if kill:
                proc.kill()
        for proc, results, log in zip(self._procs, self._outputs, self._logs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            results.close()
            log.close()

    def __enter__(self) -> "DecodePool":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close(kill=kind is not None)
