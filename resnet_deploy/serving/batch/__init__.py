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

from .options import ENGINES, BatchOptions, BatchProgress, BatchResult
from .run import run_batch

__all__ = ["BatchOptions", "BatchProgress", "BatchResult", "ENGINES", "run_batch"]
