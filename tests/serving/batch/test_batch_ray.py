"""``batch --engine ray`` on a local Ray, in an environment of its own (``.ci/run`` builds it with
``pip install -e '.[ray]' pytest``; the model comes from the main environment through
``RESNET_DEPLOY_RAY_MODEL``): the same rows as the local engine, a dead actor an error and not a
hang, CPU reservations that leave the readers room on 2 cores, profiles chosen per machine.
Elsewhere skipped, unless ``RESNET_DEPLOY_REQUIRE_RAY=1`` turns the skip into a failure."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ..._require import skip_unless_present

MODEL = os.environ.get("RESNET_DEPLOY_RAY_MODEL")
try:
    import ray  # noqa: F401
except ImportError as exc:
    skip_unless_present(f"Ray is not installed here ({exc})", "RESNET_DEPLOY_REQUIRE_RAY", module_level=True)
if not MODEL or not Path(MODEL).is_file():
    skip_unless_present("RESNET_DEPLOY_RAY_MODEL names no exported ResNet-20", "RESNET_DEPLOY_REQUIRE_RAY",
                        module_level=True)

from resnet_deploy.serving.batch import BatchOptions, run_batch  # noqa: E402
from resnet_deploy.serving.batch.ray_cluster import ray_layout  # noqa: E402

from ._photos import BROKEN  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SHARD = 32


def _table(folder: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("part-*.parquet"))])


def _run(photos: Path, out: Path, engine: str, **kwargs: object) -> pa.Table:
    run_batch(BatchOptions((str(photos),), out, model=Path(MODEL), shard_size=SHARD, threads=1, engine=engine,  # type: ignore[arg-type]
                           **kwargs))  # type: ignore[arg-type]
    return _table(out)


@pytest.fixture(scope="module")
def local_rows(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    return _run(photos, tmp_path_factory.mktemp("local") / "out", "local", workers=1)


@pytest.mark.parametrize("cpus", [1, 2, 3, 4, 8, 16, 64])
def test_the_actors_never_take_every_cpu(cpus: int) -> None:
    """ray#44687: actors that reserve every CPU starve the readers and the pipeline hangs."""
    layout = ray_layout(cpus)
    assert layout.actors >= 1 and layout.threads >= 1
    assert cpus == 1 or layout.actors * layout.threads < cpus, layout
    assert ray_layout(cpus, threads=1).threads == 1


def test_ray_rows_equal_the_local_engines(photos: Path, tmp_path: Path, local_rows: pa.Table) -> None:
    """On a local Ray of this machine's cores (2 here: the layout of ray#44687), every column but
    the engine equals the local engine's, logits bit for bit, broken files included."""
    started = time.perf_counter()
    rows = _run(photos, tmp_path / "out", "ray")
    print(f"{rows.num_rows} rows on Ray in {time.perf_counter() - started:.1f} s")
    assert rows.num_rows == local_rows.num_rows
    for name in rows.schema.names:
        if name != "engine":
            assert rows.column(name).equals(local_rows.column(name)), name
    assert set(rows.column("engine").to_pylist()) == {"ray:cpu"}
    statuses = dict(zip(rows.column("path").to_pylist(), rows.column("status").to_pylist()))
    for name, reason in BROKEN.items():
        assert reason in next(s for p, s in statuses.items() if p.endswith(name))


def test_ray_reads_images_by_url(photos: Path, tmp_path: Path, local_rows: pa.Table) -> None:
    """The decode tasks read images through fsspec: the photos packed into a zip archive and named
    by a ``zip://`` URL give the local engine's answers, row for row."""
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for file in sorted(p for p in photos.rglob("*") if p.is_file()):
            z.write(file, "photos/" + file.relative_to(photos).as_posix())
    out = tmp_path / "out"
    run_batch(BatchOptions((f"zip://photos::{archive.as_uri()}",), out, model=Path(MODEL), shard_size=SHARD,  # type: ignore[arg-type]
                           threads=1, engine="ray"))
    rows = _table(out)
    assert rows.num_rows == local_rows.num_rows
    assert all(p.startswith("zip://photos/") for p in rows.column("path").to_pylist())
    for name in ("status", "top_k_indices", "top_k_scores"):
        mine = [v if name != "status" else v == "ok" for v in rows.column(name).to_pylist()]
        theirs = [v if name != "status" else v == "ok" for v in local_rows.column(name).to_pylist()]
        assert mine == theirs, name


def test_profiles_are_chosen_per_machine(photos: Path, tmp_path: Path, local_rows: pa.Table) -> None:
    """A profile for another machine is not used; with none for this one the actors run the file
    on the CPU and the engine column says so. A profile for this machine is used, by name."""
    from resnet_deploy._machine import machine
    from resnet_deploy.profile import DeploymentProfile, model_sha256, save_profile

    model = tmp_path / "m.onnx"
    shutil.copyfile(MODEL, model)  # type: ignore[arg-type]
    here = DeploymentProfile(model="m.onnx", model_sha256=model_sha256(model), provider="cpu", backend="onnxruntime",
                             precision="fp32", batch_size=1, session={"threads": 1}, measured={}, machine=machine())
    elsewhere = DeploymentProfile(**{**here.__dict__, "machine": {**machine(), "cpu": "another CPU"}})
    save_profile(here, tmp_path / "here.json")
    save_profile(elsewhere, tmp_path / "elsewhere.json")
    out = tmp_path / "a"
    run_batch(BatchOptions((str(photos),), out, profile=tmp_path / "elsewhere.json", shard_size=SHARD, engine="ray"))
    assert set(_table(out).column("engine").to_pylist()) == {"ray:cpu (no profile for this machine)"}
    out = tmp_path / "b"
    run_batch(BatchOptions((str(photos),), out, profile=tmp_path / "elsewhere.json", profiles=(tmp_path / "here.json",),
                           shard_size=SHARD, engine="ray"))
    rows = _table(out)
    assert set(rows.column("engine").to_pylist()) == {"ray:cpu (here.json)"}
    assert rows.column("top_k_indices").equals(local_rows.column("top_k_indices"))


def _cli_job(photos: Path, out: Path) -> list[str]:
    exe = Path(sys.executable).parent / "resnet-deploy"
    return [str(exe), "batch", str(MODEL), str(photos), "-o", str(out), "--engine", "ray",
            "--shard-size", str(SHARD), "--threads", "1", "--batch-size", "2"]


def _interrupted(command: list[str], out: Path, interrupt: Callable[[subprocess.Popen[str]], None],
                 timeout: float) -> tuple[int, str]:
    """Run the command, ``interrupt`` it once a first shard is kept; its status and stderr."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "part-00000.parquet").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert (out / "part-00000.parquet").exists(), "no shard kept"
        interrupt(proc)
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    print(err)
    assert "Traceback" not in err
    return proc.returncode, err


def _resumes(command: list[str], out: Path, local_rows: pa.Table) -> None:
    """The same command finishes the job: every image once, as the local engine."""
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    rows = _table(out)
    assert rows.column("path").to_pylist() == local_rows.column("path").to_pylist()
    assert rows.column("top_k_scores").equals(local_rows.column("top_k_scores"))


def _kill_an_actor(proc: subprocess.Popen[str]) -> None:
    deadline, victim = time.monotonic() + 60, None
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        found = subprocess.run(["pgrep", "-f", "_InferActor"], capture_output=True, text=True).stdout.split()
        victim = int(found[0]) if found else None
        time.sleep(0.1)
    assert victim is not None, "no Ray actor found at work"
    os.kill(victim, signal.SIGKILL)


def test_a_dead_actor_is_an_error_not_a_hang_and_the_job_resumes(photos: Path, tmp_path: Path,
                                                                 local_rows: pa.Table) -> None:
    """ray#62746: an actor killed mid-job. The command ends within a minute with one error line,
    its finished shards kept; run again, it finishes with every image once, as the local engine."""
    out = tmp_path / "out"
    command = _cli_job(photos, out)
    status, err = _interrupted(command, out, _kill_an_actor, timeout=90)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert status == 1 and len(lines) == 1 and "the Ray job failed" in lines[0] and "resumes the job" in lines[0]
    kept = json.loads((out / "_manifest.json").read_text())["shards"]
    assert kept, "the finished shards are kept"
    _resumes(command, out, local_rows)


def test_sigterm_ends_a_ray_job_as_any_other(photos: Path, tmp_path: Path, local_rows: pa.Table) -> None:
    """ray.init puts its own SIGTERM handler in (sys.exit(15), then a native stack dump): the job
    ended with status 15 and Ray's dump on stderr. Now it unwinds as every command does: exit 130,
    one line, the finished shards kept, and the same command finishes it."""
    out = tmp_path / "out"
    command = _cli_job(photos, out)
    status, err = _interrupted(command, out, lambda proc: proc.send_signal(signal.SIGTERM), timeout=60)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert status == 130 and len(errors) == 1 and "interrupted" in errors[0], err
    assert "SIGTERM received" not in err
    _resumes(command, out, local_rows)


def test_an_actor_dead_between_tasks_stops_the_job(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """ray#62746 as Ray 2.60 has it: an actor SIGKILLed while it waits for input fails no task,
    and Ray Data waits for ever (with max_restarts=0 too). The watch notices the death and the
    rows stop with one line. The first stage is slow, so the actor is surely idle when killed."""
    import logging

    import ray

    from resnet_deploy._errors import RuntimeBackendError
    from resnet_deploy.serving.batch.ray_engine import quiet_data_context
    from resnet_deploy.serving.batch.ray_watch import ActorWatch, Executions, enter, start_roster, watched

    pid_file = tmp_path / "actor.pid"

    def slow(row: dict) -> dict:
        time.sleep(1.5)
        return row

    class Echo:
        def __init__(self, roster: object, pid_file: str) -> None:
            Path(pid_file).write_text(str(os.getpid()))
            enter(ray, roster)

        def __call__(self, batch: dict) -> dict:
            return batch

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    quiet_data_context(ray)
    try:
        roster = start_roster(ray)
        dataset = (ray.data.from_items([{"k": i} for i in range(40)], override_num_blocks=40).map(slow, num_cpus=1)
                   .map_batches(Echo, fn_constructor_kwargs={"roster": roster, "pid_file": str(pid_file)}, batch_size=1,
                                concurrency=1, num_cpus=1, max_restarts=0, max_task_retries=0))
        rows, started, killed, executions = [], time.monotonic(), None, Executions()
        with pytest.raises(RuntimeBackendError) as caught:
            for row in watched(dataset.iter_rows(), ActorWatch(ray, roster), executions.stop, quiet_s=3):
                rows.append(row)
                if len(rows) == 2:
                    time.sleep(0.3)  # the actor has answered; the next row is still in its first stage
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)
                    killed = time.monotonic()
        took = time.monotonic() - started
        assert not [t for t in threading.enumerate() if t.name == "ray-rows"], "the reading thread has ended"
        assert not [t for t in threading.enumerate() if type(t).__name__ == "StreamingExecutor"], "Ray Data stopped"
    finally:
        ray.shutdown()
    assert killed is not None and len(rows) == 2
    assert ("the Ray job failed: an inference actor died (ActorDiedError" in str(caught.value)
            and "resumes the job" in str(caught.value))
    assert time.monotonic() - killed < 60
    time.sleep(3)  # Ray Data's threads, still waiting on the dead actor, see Ray shut down
    assert "Traceback" not in capfd.readouterr().err
    print(caught.value, f"({took:.1f} s in all)")  # after readouterr, which would swallow it


@pytest.mark.parametrize("args, needle", [
    (["--ray-address", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1"),  # it used to hang for minutes
    (["-p", "cuda"], "a Ray actor could not open the model: provider 'cuda' is not available"),  # it ran on the CPU
])
def test_what_ray_cannot_do_is_one_line(photos: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    exe = Path(sys.executable).parent / "resnet-deploy"
    out = tmp_path / "out"
    proc = subprocess.run([str(exe), "batch", str(MODEL), str(photos), "-o", str(out), "--engine", "ray", *args],
                          capture_output=True, text=True, timeout=180)
    print(proc.stderr)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1 and needle in errors[0] and "Traceback" not in proc.stderr
    if "--ray-address" in args:
        assert not out.exists()  # refused before the folder is touched
