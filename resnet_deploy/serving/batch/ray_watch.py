"""Noticing a dead inference actor (ray#62746) while Ray Data waits for it for ever.

Ray Data fails the job when an actor dies with a task in hand; an actor that dies between tasks
leaves its pool empty, and the pipeline waits silently without end (reproduced on Ray 2.60 with
``max_restarts=0``: a SIGKILLed idle actor, no error, no progress). So each actor enters itself
in a :class:`Roster` as it starts, the driver pings every actor on it about once a second, and
the rows are read in a thread: when an actor is dead and no row has come for a while, the job
stops with one line (:func:`watched`). The while is there because Ray Data ends its own actors
as the last rows are handed over: a job whose rows keep coming finishes.

Whichever way the rows stop (a death, an error, Ctrl-C), Ray Data's execution is stopped and the
reading thread ends before the job returns: Ray shut down under a thread still inside Ray Data
ends the whole process with exit status 1 and no word ("The core worker has already been
shutdown"), which CI saw once before this was done.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Generator, Iterator, TypeVar

from ..._errors import RuntimeBackendError, first_line

__all__ = ["Roster", "start_roster", "enter", "ActorWatch", "Executions", "watched"]

T = TypeVar("T")

PING_EVERY_S = 1.0
QUIET_S = 10.0  # no row for this long after an actor died: the job has stopped
JOIN_S = 30.0  # how long the reading thread may take to end once its execution is stopped


class Roster:
    """The inference actors of one job, as they started (a Ray actor of no CPU)."""

    def __init__(self) -> None:
        self.actors: list[Any] = []

    def enter(self, actor: Any) -> None:
        self.actors.append(actor)

    def since(self, count: int) -> list[Any]:
        return self.actors[count:]


def start_roster(ray: Any) -> Any:
    """A :class:`Roster` actor for one job (it ends with the driver)."""
    return ray.remote(num_cpus=0)(Roster).remote()


def enter(ray: Any, roster: Any) -> None:
    """Enter the calling actor in ``roster`` (from the actor's constructor)."""
    ray.get(roster.enter.remote(ray.get_runtime_context().current_actor))


class ActorWatch:
    """Pings the actors on a roster; :meth:`poll` says the first death found, once asked."""

    def __init__(self, ray: Any, roster: Any) -> None:
        self.ray, self.roster = ray, roster
        self.pings: dict[Any, Any] = {}  # ping reference -> its actor
        self.known = 0
        self.dead: str | None = None
        self._next = 0.0

    def poll(self) -> str | None:
        """What killed an actor of the job, if one has died; pings at most once a second."""
        now = time.monotonic()
        if self.dead is not None or now < self._next:
            return self.dead
        self._next = now + PING_EVERY_S
        try:
            entered = self.ray.get(self.roster.since.remote(self.known), timeout=60)
        except self.ray.exceptions.RayError:  # the roster lost with its node: the pings go on
            entered = []
        for actor in entered:
            self.known += 1
            self.pings[actor.__ray_ready__.remote()] = actor
        if self.pings:
            ready, _ = self.ray.wait(list(self.pings), num_returns=len(self.pings), timeout=0)
            for ref in ready:
                actor = self.pings.pop(ref)
                try:
                    self.ray.get(ref)
                except self.ray.exceptions.ActorDiedError as exc:
                    self.dead = f"{type(exc).__name__}: {first_line(exc)}"
                    break
                except self.ray.exceptions.RayError:  # unreachable for a moment (ActorUnavailableError): asked again
                    pass
                self.pings[actor.__ray_ready__.remote()] = actor
        return self.dead


class Executions:
    """The Ray Data executions started in this process since this was made, to stop them.

    Ray Data runs each execution in a ``StreamingExecutor`` thread, and stopping one ends the
    wait of whoever reads its rows. The dataset holds its own only once a first row has come
    (``Dataset._current_executor``), so the new threads are found instead."""

    def __init__(self) -> None:
        self.before = _executors()

    def stop(self) -> None:
        for executor in _executors() - self.before:
            executor.shutdown(force=True)


def _executors() -> set[Any]:
    return {t for t in threading.enumerate() if type(t).__name__ == "StreamingExecutor" and hasattr(t, "shutdown")}


def watched(rows: Iterator[T], watch: ActorWatch, stop: Callable[[], None], *,
            quiet_s: float = QUIET_S) -> Generator[T, None, None]:
    """``rows``, read in a thread, so that an actor's death is noticed while Ray waits on it: one
    line when an actor is dead and no row has come for ``quiet_s``. Errors from ``rows`` pass.
    However it ends, ``stop()`` ends what ``rows`` waits on and the thread is joined."""
    handed: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=2)  # rows wait here: memory stays bounded
    given_up = threading.Event()

    def read() -> None:
        item: tuple[str, Any] = ("done", None)
        try:
            for row in rows:
                if not _hand(handed, ("row", row), given_up):
                    return  # the job gave up on the rows: stop() ends Ray Data's run
        except BaseException as exc:  # noqa: BLE001 - handed to the job, which raises it
            item = ("error", exc)
        _hand(handed, item, given_up)

    reader = threading.Thread(target=read, name="ray-rows", daemon=True)
    reader.start()
    quiet_since = time.monotonic()
    try:
        while True:
            death = watch.poll()
            try:
                kind, value = handed.get(timeout=PING_EVERY_S)
            except queue.Empty:
                if death is not None and time.monotonic() - quiet_since > quiet_s:
                    raise RuntimeBackendError(f"the Ray job failed: an inference actor died ({death}); the finished "
                                              "shards are kept: the same command resumes the job") from None
                continue
            quiet_since = time.monotonic()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        given_up.set()
        if reader.is_alive():
            stop()
            reader.join(JOIN_S)


def _hand(handed: queue.Queue[tuple[str, Any]], item: tuple[str, Any], given_up: threading.Event) -> bool:
    """Hand ``item`` to the job, waiting while the queue is full; False once the job has given up."""
    while not given_up.is_set():
        try:
            handed.put(item, timeout=0.5)
            return True
        except queue.Full:
            continue
    return False
