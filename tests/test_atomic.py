"""Outputs are never replaced without --force, even by a race; a killed run's temporary files
are ours to clean, and only ours. Real commands in subprocesses, real files, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resnet_deploy import OutputPathError
from resnet_deploy._atomic import STALE_AFTER_S, atomic_path, atomic_write_bytes, remove_stale_temporaries

CLI = [sys.executable, "-m", "resnet_deploy_cli.main"]


def _start(*args: str | Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, needle: str) -> None:
    """Read the command's progress lines (stderr) until ``needle`` shows: its check is behind it."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if needle in line:
            return
    raise AssertionError(f"{needle!r} never appeared; exit {proc.wait()}")


def test_a_file_created_at_the_output_while_export_runs_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    proc = _start("export", "--depth", "20", "-o", out, cwd=tmp_path)
    _wait_for(proc, "verifying against eager PyTorch")  # past the up-front check, before the save
    out.write_bytes(b"the user's file")
    _, stderr = proc.communicate(timeout=300)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1, stderr
    assert "already exists (it appeared while this command ran); it was not replaced: pass --force" in errors[0]
    assert out.read_bytes() == b"the user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temporary file left


def test_two_concurrent_exports_to_one_path_one_wins(tmp_path: Path) -> None:
    out = tmp_path / "same.onnx"
    procs = [_start("export", "--depth", "20", "-o", out, cwd=tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code == 1)
    errors = [line for line in loser.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "already exists" in errors[0] and "--force" in errors[0], loser
    assert out.stat().st_size > 100_000 and sorted(p.name for p in tmp_path.iterdir()) == ["same.onnx"]


def test_an_output_created_while_quantize_or_tune_runs_is_kept(resnet20_onnx: Path, tmp_path: Path) -> None:
    """The library as the CLI calls it without --force (force=False): the file appears mid-run,
    from the command's own progress callback, and survives."""
    import numpy as np

    from resnet_deploy.precision.quantize import quantize_file
    from resnet_deploy.tune import TuneOptions, tune

    np.save(tmp_path / "c.npy", np.random.default_rng(0).standard_normal((4, 3, 32, 32), dtype=np.float32))
    q = tmp_path / "q.onnx"
    with pytest.raises(OutputPathError, match="already exists"):
        quantize_file(resnet20_onnx, q, tmp_path / "c.npy", force=False, progress=lambda _m: q.write_bytes(b"user"))
    profile = tmp_path / "p.json"
    with pytest.raises(OutputPathError, match="already exists"):
        tune(TuneOptions(model=resnet20_onnx, output=profile, providers=["cpu"], precisions=["fp32"],
                         duration=0.2, rounds=1, force=False),
             on_step=lambda *_: profile.write_bytes(b"user"))
    assert q.read_bytes() == b"user" and profile.read_bytes() == b"user"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npy", "p.json", "q.onnx"]


def test_force_still_replaces(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(OutputPathError, match="already exists"):
        atomic_write_bytes(target, b"new", replace=False)
    assert target.read_bytes() == b"old"
    atomic_write_bytes(target, b"new", replace=True)
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


# -- stale temporaries: a SIGKILL runs no cleanup --------------------------------------------------

_WRITER = """
import os, signal, sys, time
from resnet_deploy._atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a model")
    print(tmp, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(120)
"""


def _writer(target: Path, mode: str) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def _age(path: Path) -> None:
    past = time.time() - STALE_AFTER_S - 10
    os.utime(path, (past, past), follow_symlinks=False)


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "out.onnx"
    proc, tmp = _writer(target, "kill")
    assert proc.wait(timeout=60) == -signal.SIGKILL and tmp.is_file()
    assert tmp.name.startswith(".out.onnx.") and tmp.name.endswith(".tmp")
    _age(tmp)
    atomic_write_bytes(target, b"model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]


def test_only_our_stale_temporaries_are_removed(tmp_path: Path) -> None:
    """A live writer's file (locked), a fresh one, another target's, near-miss names, a link and
    a folder of our pattern all stay; the killed writer's file goes."""
    target = tmp_path / "out.onnx"
    live, live_tmp = _writer(target, "sleep")
    try:
        killed, killed_tmp = _writer(target, "kill")
        killed.wait(timeout=60)
        keep = [tmp_path / name for name in (".out.onnx.tmp", ".out.onnx.abcdefgh.tmp.bak", ".out.onnx.ABCDEFGH.tmp",
                                             ".out.onnx.abcdefg.tmp", "out.onnx.abcdefgh.tmp",
                                             ".other.onnx.abcdefgh.tmp")]
        for path in keep:
            path.write_bytes(b"not ours to remove")
        (tmp_path / ".out.onnx.folder00.tmp").mkdir()
        (tmp_path / ".out.onnx.linklink.tmp").symlink_to(tmp_path / ".out.onnx.tmp")
        for path in [live_tmp, killed_tmp, *keep, tmp_path / ".out.onnx.folder00.tmp",
                     tmp_path / ".out.onnx.linklink.tmp"]:
            _age(path)
        fresh = tmp_path / ".out.onnx.fresh000.tmp"  # unlocked but just made: the instant before its lock
        fresh.write_bytes(b"")
        assert remove_stale_temporaries(target) == [killed_tmp]
        assert live_tmp.is_file() and fresh.is_file() and all(p.exists() for p in keep)
    finally:
        live.kill()
        live.wait()
    assert live_tmp.is_file()  # its lock died with it: stale now, for the next write to remove
    assert live_tmp in remove_stale_temporaries(target)


def test_a_derived_name_too_long_is_refused_before_any_work(tmp_path: Path) -> None:
    """export --int8 derives `<stem>_int8.onnx`: one over the limit is refused up front, not after the export."""
    import numpy as np

    np.save(tmp_path / "c.npy", np.zeros((2, 3, 32, 32), np.float32))
    out = tmp_path / ("a" * (255 - len(".onnx") - 2) + ".onnx")  # fits; its _int8 twin (+5 bytes) does not
    started = time.perf_counter()
    result = subprocess.run([*CLI, "export", "--depth", "20", "--int8", "-c", tmp_path / "c.npy", "-o", out],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "longer than the 255 bytes" in result.stderr, result.stderr
    assert "building the model" not in result.stderr and time.perf_counter() - started < 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npy"]


def test_a_temporary_file_name_fits_beside_the_longest_name(tmp_path: Path) -> None:
    target = tmp_path / ("b" * 250 + ".onnx")
    with atomic_path(target, replace=False) as tmp:
        assert len(tmp.name.encode()) <= 255
        tmp.write_bytes(b"x")
    assert target.read_bytes() == b"x"


def test_full_disk_keeps_previous_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from resnet_deploy._atomic import files as atomic_files
    from resnet_deploy.export.exporter import ExportOptions, export_model

    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous")
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_files.os, "fsync", full_disk)
    with pytest.raises(OutputPathError, match="No space left on device"):
        export_model(ExportOptions("resnet20"), out)
    monkeypatch.setattr(atomic_files.os, "fsync", real_fsync)
    assert out.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


# -- folders: staged_folder, the one way a bundle and a Triton entry are written ---------------------

def test_a_staged_folder_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    from resnet_deploy._atomic import STAGING_MARKER, staged_folder

    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with staged_folder(target, replace=False) as staged:
            (staged.path / "half").write_text("x")
            raise RuntimeError("cut short")
    assert sorted(os.listdir(tmp_path)) == []  # neither the target nor the staging folder
    with staged_folder(target, replace=False) as staged:
        (staged.path / "a").write_text("1")
    assert sorted(os.listdir(target)) == ["a"] and not (target / STAGING_MARKER).exists()
    with pytest.raises(OutputPathError, match="already exists; pass --force"):
        with staged_folder(target, replace=False):
            pass
    with staged_folder(target, replace=True) as staged:
        (staged.path / "b").write_text("2")
    assert sorted(os.listdir(tmp_path)) == ["out"] and sorted(os.listdir(target)) == ["b"]


def test_a_target_created_while_staging_is_kept(tmp_path: Path) -> None:
    from resnet_deploy._atomic import staged_folder

    target = tmp_path / "out"
    with pytest.raises(OutputPathError, match="already exists"):
        with staged_folder(target, replace=False, shown="--output out") as staged:
            (staged.path / "new").write_text("ours")
            target.mkdir()
            (target / "theirs").write_text("kept")
    assert sorted(os.listdir(tmp_path)) == ["out"] and os.listdir(target) == ["theirs"]


def test_only_unlocked_staging_folders_of_the_target_are_removed(tmp_path: Path) -> None:
    """A killed writer's staging folder (our marker, nobody holding its lock) goes; a live
    writer's (locked), a fresh one (its writer may not have locked it yet), one of another target
    and a folder without our marker stay."""
    import fcntl

    from resnet_deploy._atomic import STAGING_MARKER, staged_folder

    folders = {name: tmp_path / name for name in (".out.killed01", ".out.live0001", ".out.fresh001",
                                                  ".other.killed", ".out.nomarker")}
    for name, folder in folders.items():
        folder.mkdir()
        if name != ".out.nomarker":
            (folder / STAGING_MARKER).write_text("")
            if name != ".out.fresh001":
                os.utime(folder / STAGING_MARKER, (0, 0))
    with open(folders[".out.live0001"] / STAGING_MARKER) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with staged_folder(tmp_path / "out", replace=False):
            pass
    assert sorted(os.listdir(tmp_path)) == [".other.killed", ".out.fresh001", ".out.live0001", ".out.nomarker", "out"]
