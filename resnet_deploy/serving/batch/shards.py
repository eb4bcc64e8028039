"""Shards: a job's inputs cut into fixed runs of ``shard_size`` images, one Parquet file each.

The cut depends only on the stored input list and the shard size, so shard ``i`` holds the same
images in every run of a job: a resumed run redoes exactly the shards no run finished.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Sequence

__all__ = ["Shard", "plan_shards", "shard_name", "SHARD_NAME"]

SHARD_NAME = re.compile(r"part-\d{5,}\.parquet")


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


@dataclass(frozen=True)
class Shard:
    """Shard ``index``: the images ``paths``, in the job's order."""

    index: int
    paths: tuple[str, ...]

    @property
    def name(self) -> str:
        return shard_name(self.index)

    def batches(self, size: int) -> Iterator[tuple[str, ...]]:
        """The shard's images ``size`` at a time. Batches never cross shards, so a shard's rows
        (and how its images were grouped for inference) do not depend on which shards ran."""
        for start in range(0, len(self.paths), size):
            yield self.paths[start : start + size]


def plan_shards(paths: Sequence[str], shard_size: int) -> list[Shard]:
    return [Shard(i, tuple(paths[start : start + shard_size]))
            for i, start in enumerate(range(0, len(paths), shard_size))]
