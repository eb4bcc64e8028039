"""batch: bad numbers end in one ``error:`` line, as every other command's, not typer's usage box.

The rows run in-process (``tests/_cli_cases.py``); the job's own refusals (folders, inputs,
resumes) are tested with real jobs in ``tests/serving/batch/test_batch.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .._cli_cases import Case, check_bad_input


def _batch(*extra: str) -> list[str]:
    return ["batch", "{model}", "{image.png}", "-o", "{tmp}/job", *extra]


CASES = [
    Case("batch-workers-0", _batch("--workers", "0"),
         ["workers must be a whole number of at least 1", "received 0"], []),
    Case("batch-workers-absurd", _batch("--workers", "257"), ["workers must be at most 256", "received 257"], []),
    Case("batch-threads-0", _batch("--threads", "0"),
         ["threads must be a whole number of at least 1", "received 0"], []),
    Case("batch-batch-size-0", _batch("--batch-size", "0"),
         ["batch_size must be a whole number of at least 1", "received 0"], []),
    Case("batch-batch-size-absurd", _batch("-b", "4097"), ["batch_size must be at most 4,096"], []),
    Case("batch-shard-size-0", _batch("--shard-size", "0"), ["shard_size must be a whole number of at least 1"], []),
    Case("batch-top-k-0", _batch("--top-k", "0"), ["top_k must be a whole number of at least 1"], []),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(case: Case, files: dict[str, Path], tmp_path: Path) -> None:
    check_bad_input(case, files, tmp_path)
