"""A decode worker that dies: the job goes on, and an image that kills its decoder is a row.

A worker dies holding a batch: killed from outside (the system's out-of-memory killer, a signal),
or crashed by a decoder's bug on one file. The pool is restarted, that batch is decoded again one
image at a time, and an image whose decoder dies a second time gets a status saying so; the
batches in flight are submitted again. When every image of a batch kills its decoder, the fault is
not the images' (no memory, a broken install): that is an error, not a batch of failed rows.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from ...runtime.raw_images import size_groups
from .decode import OK, Decoded
from .pool import WorkerDied

__all__ = ["decode_alone", "Pool"]


class Pool(Protocol):
    """What recovery needs of a pool (:class:`~.pool.DecodePool`)."""

    def submit(self, paths: Sequence[str]) -> None: ...

    def result(self) -> Decoded: ...

    def restart(self) -> None: ...


def decode_alone(pool: Pool, paths: Sequence[str], died: WorkerDied) -> Decoded:
    """Decode ``paths`` one at a time on a restarted ``pool``, as the batch they were in; an image
    whose worker dies is a row saying so. ``died`` is how the batch's worker died."""
    pool.restart()
    statuses: list[str] = []
    found: list[tuple[int, np.ndarray]] = []
    for row, path in enumerate(paths):
        pool.submit((path,))
        try:
            one = pool.result()
        except WorkerDied as again:
            pool.restart()
            statuses.append(f"its decoder died on it, twice ({again})")
            continue
        statuses.append(one.statuses[0])
        found.extend((row, batch[0]) for _rows, batch in one.groups)
    if len(paths) > 1 and all(s != OK and s.startswith("its decoder died") for s in statuses):
        raise died  # not one image's fault
    arrays = [array for _row, array in found]
    groups = tuple((tuple(found[i][0] for i in group), np.stack([arrays[i] for i in group]))
                   for group in size_groups(arrays))
    return Decoded(tuple(paths), tuple(statuses), groups)
