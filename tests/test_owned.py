"""Temporary folders a run owns (``resnet_deploy/_owned.py``): a run cut short by SIGKILL leaves
its folder, and the next run of the same command removes it; a live run's, an unmarked one and a
link stay."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from resnet_deploy import _owned

from ._pids import dead_pid


HERE = _owned.pid_namespace()


@pytest.mark.parametrize("marker, removed", [
    (lambda: f"{dead_pid()} {HERE}", True),            # a run killed by SIGKILL: its folder goes
    (lambda: f"{os.getpid()} {HERE}", False),          # a run that is still going: its folder stays
    (None, False),                                     # no marker: not ours to judge
    (lambda: f"{dead_pid()} 1", False),                # another pid namespace's (a container sharing /tmp)
    (lambda: str(dead_pid()), True),                   # a marker from before namespaces were written
    (lambda: f"99999999999 {HERE}", True),              # no process has this pid (OverflowError before: pass 5)
    ("fifo", False),                                   # a FIFO: it hung every later run for ever (pass 5)
    ("sparse", False),                                 # 3 GB read whole before (pass 5)
], ids=["dead", "alive", "unmarked", "another-namespace", "pid-only", "no-such-pid", "fifo", "sparse"])
def test_a_folder_of_a_run_that_is_gone_is_removed_by_the_next(tmp_path: Path, marker: Callable[[], str] | str | None,
                                                               removed: bool) -> None:
    folder = tmp_path / "resnet-deploy-serve-abc123"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"x" * 10)
    if marker == "fifo":
        os.mkfifo(folder / _owned.OWNER_MARKER)
    elif marker == "sparse":
        with open(folder / _owned.OWNER_MARKER, "wb") as f:
            f.truncate(3 << 30)
    elif marker is not None:
        (folder / _owned.OWNER_MARKER).write_text(marker())
    fresh = _owned.owned_folder("resnet-deploy-serve-", tmp_path)
    assert (fresh / _owned.OWNER_MARKER).read_text() == f"{os.getpid()} {HERE}"
    assert folder.exists() is not removed


def test_a_tree_deeper_than_pythons_recursion_is_removed(tmp_path: Path) -> None:
    """A stale folder 3,000 levels deep ended the run in RecursionError and stayed (pass 6)."""
    folder = tmp_path / "resnet-deploy-bench-deep"
    folder.mkdir()
    (folder / _owned.OWNER_MARKER).write_text(f"{dead_pid()} {HERE}")
    fd = os.open(folder, os.O_RDONLY)
    for _ in range(3000):  # by descriptors: the path would pass PATH_MAX
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    try:
        assert _owned.remove_stale_folders("resnet-deploy-bench-", tmp_path) == [folder]
        assert not folder.exists()
    finally:  # never leave it to pytest, whose own clean-up of old temporary folders recurses too
        subprocess.run(["rm", "-rf", "--", str(folder)], check=False)


def test_a_link_to_a_folder_is_never_followed(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / _owned.OWNER_MARKER).write_text(str(dead_pid()))
    (tmp_path / "resnet-deploy-triton-link").symlink_to(precious)
    _owned.remove_stale_folders("resnet-deploy-triton-", tmp_path)
    assert precious.is_dir() and (tmp_path / "resnet-deploy-triton-link").is_symlink()


def test_owned_tempdir_goes_at_the_end(tmp_path: Path) -> None:
    with _owned.owned_tempdir("resnet-deploy-serve-", tmp_path) as folder:
        assert folder.is_dir()
    assert not folder.exists()


def test_a_bench_killed_by_sigkill_leaves_a_folder_the_next_bench_removes(tmp_path: Path, resnet20_onnx: Path) -> None:
    """Before: every SIGKILLed ``bench`` left its ``/tmp/resnet-deploy-bench-*`` for good, and its
    worker ran on to the end of its timed round (up to --duration) in the folder the next bench removes."""
    psutil = pytest.importorskip("psutil")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    command = [sys.executable, "-m", "resnet_deploy_cli.main", "bench", str(resnet20_onnx), "--providers", "cpu",
               "--rounds", "1", "--warmup", "0"]
    killed = subprocess.Popen([*command, "--duration", "600"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    workers: list = []
    while not workers and time.monotonic() < deadline:  # a worker in its timed round, in the marked folder
        time.sleep(0.2)
        workers = [c for c in psutil.Process(killed.pid).children()
                   if "resnet_deploy.bench.worker" in " ".join(c.cmdline())]
    time.sleep(8)  # into the timed round, where a worker reads nothing from bench until it ends
    marked = list(tmp_path.glob(f"resnet-deploy-bench-*/{_owned.OWNER_MARKER}"))
    os.kill(killed.pid, signal.SIGKILL)  # bench alone: its worker must follow
    killed.wait()
    left = [m.parent for m in marked]
    assert workers and left and left[0].is_dir(), "bench made no worker or no folder of its own in TMPDIR"
    print(f"left by the killed bench: {left[0].name}; its worker {workers[0].pid}")
    gone, alive = psutil.wait_procs(workers, timeout=30)
    for straggler in alive:
        straggler.kill()
    assert not alive, f"bench's worker outlived it: {alive}"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(killed.pid, signal.SIGKILL)

    done = subprocess.run([*command, "--iterations", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not left[0].exists()
    assert not list(tmp_path.glob("resnet-deploy-bench-*"))  # and its own went at the end
