"""Offline jobs over many images: ``resnet-deploy batch`` as a library.

The pipeline, one module per stage, the engine-independent ones first:

- :mod:`.inputs`: INPUT arguments -> one sorted list of paths, stored in the output folder;
- :mod:`.shards`: the list cut into fixed shards, one Parquet file each;
- :mod:`.folder`, :mod:`.manifest`, :mod:`.job`: the output folder, whose it is, what job it
  holds and which shards are finished; start, resume or refuse;
- :mod:`.model`: the Predictor and what the rows depend on (its digest, logits or embedding);
- :mod:`.decode` (worker side) and :mod:`.infer` (the session's side): one batch of paths ->
  its rows (:mod:`.rows`); every engine runs these two;
- :mod:`.local`, :mod:`.pool`: the local engine, worker processes feeding one session.

See docs/batch.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .options import ENGINES, BatchOptions, BatchProgress, BatchResult

if TYPE_CHECKING:
    from .run import run_batch

__all__ = ["BatchOptions", "BatchProgress", "BatchResult", "ENGINES", "run_batch"]


def __getattr__(name: str) -> Any:
    # run_batch on first use (PEP 562): a decode worker imports this package for decode.py alone,
    # and must not load pyarrow and the engine with it (40 MB and 0.2 s per worker).
    if name == "run_batch":
        from .run import run_batch

        return run_batch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
