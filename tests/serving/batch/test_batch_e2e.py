"""A batch job killed for real, then run again: the console script as its own process.

Marked ``e2e`` (see tests/cli/test_e2e.py): SIGKILL runs no cleanup at all, and a Ctrl-C at a
terminal goes to the whole foreground process group; only a real process shows what is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resnet_deploy.serving.batch import BatchOptions, run_batch

from ..._cli_cases import CLI

pytestmark = pytest.mark.e2e
SHARD = 8  # 207 photos: 26 shards, slow enough to be killed half-way on one worker and one thread


def _table(folder: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("part-*.parquet"))])


def _finished(folder: Path) -> int:
    try:
        return len(json.loads((folder / "_manifest.json").read_text())["shards"])
    except (OSError, ValueError):
        return 0


@pytest.fixture(scope="module")
def clean(resnet20_onnx: Path, photos: Path, tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    out = tmp_path_factory.mktemp("clean") / "out"
    run_batch(BatchOptions((str(photos),), out, model=resnet20_onnx, shard_size=SHARD))
    return _table(out)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "Ctrl-C"])
def test_a_killed_job_run_again_finishes_with_every_image_once(clean: pa.Table, resnet20_onnx: Path, photos: Path,
                                                               tmp_path: Path, how: str) -> None:
    out = tmp_path / "out"
    args = [*CLI, "batch", str(resnet20_onnx), str(photos), "-o", str(out), "--shard-size", str(SHARD), "-b", "4",
            "--workers", "1", "--threads", "1"]
    # A session of its own, so that a Ctrl-C can go to its process group as a terminal sends it.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while _finished(out) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers and proc.poll() is None, "the job ended before it could be interrupted"
    if how == "Ctrl-C":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=60)
    if how == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
    else:
        assert (proc.returncode == 130 and "interrupted" in err and "resumes the job" in err
                and "Traceback" not in err), err
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "a decode worker outlived its job"
    assert 2 <= _finished(out) < 26
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "finished by an earlier run" in again.stdout, again.stderr
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    table = _table(out)
    assert table.column("path").to_pylist() == clean.column("path").to_pylist()  # every image once, in order
    assert table.equals(clean)
