"""A decode worker process: ``python -m resnet_deploy.serving.batch.worker``.

It reads a :class:`~.decode.DecodeSpec`, then batches of paths, pickled, from stdin, and writes
each batch's :class:`~.decode.Decoded` to stdout in the order received. It runs in a session of
its own, so a Ctrl-C at the terminal reaches the main process only, and it exits as soon as
stdin reaches its end: when the main process closes it, or dies (SIGKILL included; the kernel
closes the pipe).
"""

from __future__ import annotations

import os
import pickle
import queue
import sys
import threading
import warnings
from typing import BinaryIO

from .decode import DecodeSpec, decode_batch

__all__ = ["main"]


def _read_tasks(source: BinaryIO, tasks: "queue.Queue[tuple[str, ...]]") -> None:
    # Read ahead, so that the main process never blocks writing a task while this worker writes
    # a result: the tasks in flight are bounded by the main process's window.
    while True:
        try:
            tasks.put(pickle.load(source))
        except EOFError:
            os._exit(0)  # no more work, or no main process: either way, nothing to finish


def main() -> None:
    # PIL warns about files (corrupt EXIF, large images) naming none of them; every image that
    # fails is a row with its reason, so the warnings would only break the progress bar.
    warnings.simplefilter("ignore")
    results = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot corrupt the results
    source = sys.stdin.buffer
    spec: DecodeSpec = pickle.load(source)
    tasks: queue.Queue[tuple[str, ...]] = queue.Queue()
    threading.Thread(target=_read_tasks, args=(source, tasks), daemon=True).start()
    while True:
        pickle.dump(decode_batch(tasks.get(), spec), results, protocol=pickle.HIGHEST_PROTOCOL)
        results.flush()


if __name__ == "__main__":
    main()
