"""``resnet-deploy batch`` on the local engine: real models, real photos, broken files.

The rows are checked against :class:`Predictor` itself (the same numbers, bit for bit), a resumed
job against an uninterrupted one, and every refusal is one line that leaves the folder as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import time
from pathlib import Path

import numpy as np
import onnx
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resnet_deploy import InputError, OutputPathError
from resnet_deploy.graph.io import load_onnx, model_sha256, save_onnx, write_metadata
from resnet_deploy.image_input import ImageInputSpec, add_image_input, preprocessing_for
from resnet_deploy.runtime import Predictor
from resnet_deploy.serving.batch import BatchOptions, BatchProgress, run_batch
from resnet_deploy.serving.batch.decode import Decoded, decode_batch
from resnet_deploy.serving.batch.folder import claim
from resnet_deploy.serving.batch.inputs import list_inputs
from resnet_deploy.serving.batch.local import decode_spec
from resnet_deploy.serving.batch.pool import DecodePool, WorkerDied
from resnet_deploy.serving.batch.recover import decode_alone

from ..._cli_cases import CLI, assert_clean_failure, error_lines, run_cli, run_subprocess
from ._photos import BROKEN, ODD

SHARD = 48  # 207 inputs: shards of 48, 48, 48, 48 and 15


def _options(model: Path, inputs: list[str | Path], out: Path, **kwargs: object) -> BatchOptions:
    return BatchOptions(tuple(map(str, inputs)), out, model=model, **kwargs)  # type: ignore[arg-type]


def _table(folder: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("part-*.parquet"))])


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "_manifest.json").read_text())


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


@pytest.fixture(scope="module")
def clean(resnet20_onnx: Path, photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted job over every photo, the reference of the other tests."""
    out = tmp_path_factory.mktemp("clean") / "out"
    result = run_batch(_options(resnet20_onnx, [photos], out, shard_size=SHARD))
    assert (result.images, result.processed, result.failed, result.shards_written) == (207, 207, 5, 5)
    return out


def test_every_image_is_one_row_with_predicts_answer(clean: Path, photos: Path, resnet20_onnx: Path) -> None:
    table = _table(clean)
    images = sorted(str(p) for p in photos.rglob("*") if p.suffix in (".jpg", ".png", ".tif"))
    assert table.column("path").to_pylist() == images  # each once, sorted, notes.txt left out
    rows = {Path(r["path"]).name: r for r in table.to_pylist()}
    for name, reason in BROKEN.items():
        assert (reason in rows[name]["status"] and rows[name]["top_k_indices"] is None
                and rows[name]["top_k_scores"] is None)
    good = [r["path"] for r in table.to_pylist() if r["status"] == "ok"]
    assert len(good) == 202 and all(name in rows and rows[name]["status"] == "ok" for name in ODD)
    with Predictor(resnet20_onnx, provider="cpu") as predictor:
        expected = predictor.predict(good, top_k=5, batch_size=16)
    by_path = {r["path"]: r for r in table.to_pylist()}
    for path, answer in zip(good, expected):
        assert by_path[path]["top_k_indices"] == [p.index for p in answer]
        assert by_path[path]["top_k_scores"] == [float(np.float32(p.score)) for p in answer]  # bit for bit
    assert set(table.column("model_sha256").to_pylist()) == {model_sha256(resnet20_onnx)}
    assert set(table.column("engine").to_pylist()) == {"local:cpu"}
    manifest = _manifest(clean)
    assert [(s["name"], s["rows"]) for s in manifest["shards"]] == [
        (f"part-0000{i}.parquet", n) for i, n in enumerate([48] * 4 + [15])]
    assert sum(s["failed"] for s in manifest["shards"]) == 5
    assert sorted(p.name for p in clean.iterdir()) == (["_inputs.txt", "_manifest.json"]
                                                       + [f"part-0000{i}.parquet" for i in range(5)])


def test_workers_make_the_tensor_predictor_makes(photos: Path, resnet20_onnx: Path) -> None:
    paths = sorted(str(p) for p in (photos / "a").glob("*.jpg"))[:8] + [str(photos / "odd" / n) for n in ODD]
    with Predictor(resnet20_onnx, provider="cpu") as predictor:
        decoded = decode_batch(paths, decode_spec(predictor))
        ((rows, tensor),) = decoded.groups
        assert rows == tuple(range(len(paths))) and tensor.dtype == np.float32
        assert np.array_equal(tensor, predictor.preprocess(paths))


@pytest.fixture(scope="module")
def features_onnx(resnet20_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ResNet-20 cut at its pooled features, as ``export --features`` makes it: output
    ``embedding`` [N, 64], metadata ``output`` = ``embedding`` (made by hand: no export to wait for)."""
    model = onnx.load(str(resnet20_onnx))
    fc = next(n for n in model.graph.node if n.op_type == "Gemm" and n.output[0] == model.graph.output[0].name)
    model.graph.node.remove(fc)
    pooled = next(n for n in model.graph.node if n.output[0] == fc.input[0])
    pooled.output[0] = "embedding"
    out = model.graph.output[0]
    out.name, out.type.tensor_type.shape.dim[1].dim_value = "embedding", 64
    for weight in [t for t in model.graph.initializer if t.name in fc.input]:
        model.graph.initializer.remove(weight)
    for prop in [p for p in model.metadata_props if p.key == "num_classes"]:
        model.metadata_props.remove(prop)
    write_metadata(model, {"output": "embedding", "embedding_dim": 64})
    path = tmp_path_factory.mktemp("features") / "r20_features.onnx"
    save_onnx(model, path)
    return path


def test_a_features_model_writes_its_embeddings(features_onnx: Path, photos: Path, tmp_path: Path) -> None:
    chosen = sorted((photos / "a").glob("*.jpg"))[:30]
    listing = tmp_path / "list.txt"  # relative to the list's folder
    listing.write_text("".join(os.path.relpath(p, tmp_path) + "\n" for p in chosen))
    run_batch(_options(features_onnx, [f"@{listing}", photos / "odd"], tmp_path / "out", shard_size=16))
    table = _table(tmp_path / "out")
    assert (table.schema.field("embedding").type == pa.list_(pa.float32(), 64)
            and "top_k_indices" not in table.column_names)
    good = [r["path"] for r in table.to_pylist() if r["status"] == "ok"]
    assert len(table) == 37 and len(good) == 32
    with Predictor(features_onnx, provider="cpu") as predictor:
        expected = predictor.embed(good, batch_size=16)
    got = np.array([r["embedding"] for r in table.to_pylist() if r["status"] == "ok"], np.float32)
    assert np.array_equal(got, expected)
    assert all(r["embedding"] is None for r in table.to_pylist() if r["status"] != "ok")


# (the model, the status of its row when its weights are NaN)
NON_FINITE = [("resnet20_onnx", "the model computed non-finite logits (NaN or Inf) for this image"),
              ("features_onnx", "the model computed a non-finite embedding (NaN or Inf) for this image")]


@pytest.mark.parametrize(("fixture", "status"), NON_FINITE, ids=["logits", "embedding"])
def test_a_non_finite_answer_is_a_row_that_says_so(fixture: str, status: str, photos: Path, tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    model = onnx.load(str(request.getfixturevalue(fixture)))
    weight = next(t for t in model.graph.initializer if t.name == "conv1.weight")
    weight.CopyFrom(onnx.numpy_helper.from_array(np.full_like(onnx.numpy_helper.to_array(weight), np.nan), weight.name))
    broken = tmp_path / "nan.onnx"
    onnx.save(model, str(broken))
    image = sorted((photos / "a").glob("*.jpg"))[0]
    run_batch(_options(broken, [image], tmp_path / "out"))
    assert [r["status"] for r in _table(tmp_path / "out").to_pylist()] == [status]


def test_an_image_input_model_decodes_in_workers_and_resizes_in_its_graph(resnet20_onnx: Path, photos: Path,
                                                                          tmp_path: Path) -> None:
    float_model = load_onnx(resnet20_onnx)
    model = tmp_path / "r20_images.onnx"
    save_onnx(add_image_input(float_model, ImageInputSpec(preprocessing_for(float_model), 0)), model)
    run_batch(_options(model, [photos / "b" / "photo00*.jpg", photos / "odd"], tmp_path / "out"))
    table = _table(tmp_path / "out")
    good = [r for r in table.to_pylist() if r["status"] == "ok"]
    assert len(table) == 12 and len(good) == 7
    with Predictor(model, provider="cpu") as predictor:
        expected = predictor.predict([r["path"] for r in good], top_k=5, batch_size=16)
    assert [r["top_k_scores"] for r in good] == [[float(np.float32(p.score)) for p in answer] for answer in expected]


class _Stop:
    """A progress callback that interrupts the job, as Ctrl-C would, once ``at`` images are done."""

    def __init__(self, at: int) -> None:
        self.at, self.seen = at, []

    def __call__(self, progress: BatchProgress) -> None:
        self.seen.append(progress)
        if progress.done >= self.at:
            raise KeyboardInterrupt


def _workers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "resnet_deploy.serving.batch.worker" in " ".join(p.cmdline())]


def test_a_resumed_job_equals_an_uninterrupted_one(clean: Path, photos: Path, resnet20_onnx: Path,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "out"
    options = _options(resnet20_onnx, [photos], out, shard_size=SHARD)
    with pytest.raises(KeyboardInterrupt):
        run_batch(options, progress=_Stop(3 * SHARD + 16))  # shards 0-2 written, a batch of shard 3 done
    assert not _workers()
    assert [s["name"] for s in _manifest(out)["shards"]] == ["part-00000.parquet", "part-00001.parquet",
                                                             "part-00002.parquet"]
    # Killed between a shard's file and the manifest's record of it; a finished shard lost.
    manifest = _manifest(out)
    manifest["shards"] = [s for s in manifest["shards"] if s["name"] != "part-00001.parquet"]
    (out / "_manifest.json").write_text(json.dumps(manifest))
    (out / "part-00000.parquet").unlink()
    (out / ".part-00003.parquet.k1ll3d00.tmp").write_bytes(b"half a shard")  # SIGKILL mid-write, just now
    seen = _Stop(10**9)
    result = run_batch(options, progress=seen)
    assert (result.shards_skipped, result.shards_written, result.processed) == (1, 4, 207 - SHARD)
    assert seen.seen[0] == BatchProgress(SHARD, 207, 0)  # the run starts from the finished shard
    assert _table(out).equals(_table(clean))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in clean.iterdir())


def test_a_finished_job_is_not_redone(clean: Path, photos: Path, resnet20_onnx: Path, tmp_path: Path) -> None:
    shutil.copytree(clean, tmp_path / "out")
    before = _snapshot(tmp_path / "out")
    result = run_batch(_options(resnet20_onnx, [photos], tmp_path / "out", shard_size=SHARD))
    assert (result.shards_skipped, result.shards_written, result.processed) == (5, 0, 0)
    assert _snapshot(tmp_path / "out") == before


@pytest.fixture(scope="module")
def other_onnx(resnet20_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ResNet-20 with another digest (a changed docstring), as a retrained file would have."""
    model = onnx.load(str(resnet20_onnx))
    model.doc_string = "retrained"
    path = tmp_path_factory.mktemp("other") / "other.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture
def small_job(resnet20_onnx: Path, photos: Path, tmp_path: Path) -> Path:
    out = tmp_path / "job"
    run_batch(_options(resnet20_onnx, [photos / "odd"], out))
    return out


@pytest.mark.parametrize("args, needle", [
    (["{other}", "{photos}/odd"], "holds a job for another model (model_sha256: "),
    (["{model}", "{photos}/odd", "-k", "3"], "holds a job for another --top-k (top_k: 5; this run: 3)"),
    (["{model}", "{photos}/odd", "--shard-size", "7"], "holds a job for another --shard-size"),
    (["{model}", "{photos}/a"], "holds a job for other inputs"),
], ids=["model", "top-k", "shard-size", "inputs"])
def test_another_job_on_a_folder_is_one_line_and_leaves_it(small_job: Path, photos: Path, resnet20_onnx: Path,
                                                           other_onnx: Path, args: list[str], needle: str) -> None:
    before = _snapshot(small_job)
    names = {"{other}": str(other_onnx), "{model}": str(resnet20_onnx), "{photos}": str(photos)}
    argv = [a.replace(k, v) for a in args for k, v in [next(((k, v) for k, v in names.items() if k in a), ("", ""))]]
    assert_clean_failure(run_cli("batch", *argv, "-o", small_job), needle, "pass --force to start over")
    assert _snapshot(small_job) == before


@pytest.mark.parametrize("inputs, needle", [
    (["{photos}/odd", "{photos}/nope.jpg"], "input not found: "),
    (["{photos}/odd", "{photos}/*.gif"], "matches no images"),
    (["@{photos}/missing.txt"], "cannot read the list"),
    (["@{photos}/odd/float.tif"], "cannot read the list"),  # not text
], ids=["missing-input", "empty-glob", "missing-list", "binary-list"])
def test_an_input_naming_nothing_is_one_line_before_any_work(small_job: Path, photos: Path, resnet20_onnx: Path,
                                                             tmp_path: Path, inputs: list[str], needle: str) -> None:
    argv = [a.replace("{photos}", str(photos)) for a in inputs]
    assert_clean_failure(run_cli("batch", resnet20_onnx, *argv, "-o", tmp_path / "new"), needle)
    assert not (tmp_path / "new").exists()
    before = _snapshot(small_job)  # --force on a job of ours: still refused before the old job is cleared
    assert_clean_failure(run_cli("batch", resnet20_onnx, *argv, "-o", small_job, "--force"), needle)
    assert _snapshot(small_job) == before


@pytest.mark.parametrize("name, needle", [
    ("part-00000.parquet", "output path is not a regular file (a FIFO"),  # not ours to replace
    ("_inputs.txt", "_inputs.txt cannot be read; pass --force to start over"),
    ("_manifest.json", "not a regular file (a FIFO)"),
])
def test_a_fifo_in_a_job_folder_never_blocks_the_run(small_job: Path, photos: Path, resnet20_onnx: Path, name: str,
                                                     needle: str) -> None:
    """Adversarial pass B11 (issue 26): a FIFO put at a shard's name hung the resumed run in its
    open, past SIGTERM and SIGINT. What the job folder holds is opened as a file only if it is one,
    and a run that meets anything else says so in one line."""
    (small_job / name).unlink()
    os.mkfifo(small_job / name)
    assert_clean_failure(run_subprocess("batch", resnet20_onnx, photos / "odd", "-o", small_job, timeout=60), needle)
    assert stat.S_ISFIFO((small_job / name).stat().st_mode)  # left as it was

def test_a_job_folders_input_list_is_read_no_further_than_its_paths_can_fill(small_job: Path, photos: Path,
                                                                             resnet20_onnx: Path) -> None:
    """Fourth adversarial pass F3: a sparse 4 GB _inputs.txt was read whole by the resumed run
    (4.05 GB, then out of memory). It is read no further than the recorded paths can fill, and
    what is there is not the list the manifest recorded: one line. Run under a 5 GiB address
    space, where reading 8 GiB fails."""
    import resource
    import subprocess

    os.truncate(small_job / "_inputs.txt", 8 << 30)  # sparse: no disk used
    limit = 5 << 30
    proc = subprocess.run([*CLI, "batch", str(resnet20_onnx), str(photos / "odd"), "-o", str(small_job)],
                          capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "_inputs.txt is not the list its manifest recorded; pass --force to start over" in proc.stderr, proc.stderr


def test_a_folder_that_is_not_ours_is_refused_even_with_force(resnet20_onnx: Path, photos: Path,
                                                              tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    for extra in ([], ["--force"]):
        assert_clean_failure(run_cli("batch", resnet20_onnx, photos / "odd", "-o", tmp_path / "mine", *extra),
                             "not a batch job's")
    assert _snapshot(tmp_path / "mine") == {"thesis.tex": b"years of work"}
    (tmp_path / "file").write_text("x")
    assert_clean_failure(run_cli("batch", resnet20_onnx, photos / "odd", "-o", tmp_path / "file", "--force"),
                         "not a folder")


def test_force_starts_over(small_job: Path, photos: Path, other_onnx: Path) -> None:
    result = run_cli("batch", other_onnx, photos / "odd", "-k", "2", "-o", small_job, "--force")
    assert result.returncode == 0 and not error_lines(result.stderr), result.stderr
    table = _table(small_job)
    assert set(table.column("model_sha256").to_pylist()) == {model_sha256(other_onnx)}
    assert {len(v) for v in table.column("top_k_indices").to_pylist() if v is not None} == {2}
    assert _manifest(small_job)["key"]["top_k"] == 2


def test_the_cli_prints_one_summary_line_and_no_bar_off_a_terminal(resnet20_onnx: Path, photos: Path,
                                                                   tmp_path: Path) -> None:
    result = run_cli("batch", resnet20_onnx, photos / "odd", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("7 images, 5 failed, ")
    assert "1 of 1 shard written to" in result.stdout and "local:cpu" in result.stdout
    assert all(line.startswith("warning:") for line in result.stderr.splitlines())  # no bar, no error
    again = run_cli("batch", resnet20_onnx, photos / "odd", "-o", tmp_path / "out")
    assert again.stdout.startswith("nothing to do: the job in ") and again.stdout.endswith("earlier run (1 shard)\n")


def test_inputs_are_listed_once_sorted_and_recursively(photos: Path, tmp_path: Path) -> None:
    one = photos / "a" / "photo001.jpg"
    (tmp_path / "list.txt").write_text(f"{os.path.relpath(one, tmp_path)}\n\n{one}\nmissing.jpg\n")
    listed = list_inputs([str(photos / "a"), str(photos / "a" / "*.jpg"),
                          f"@{tmp_path / 'list.txt'}", str(photos / "**" / "*.png")])
    assert listed == sorted([*map(str, (photos / "a").glob("*.jpg")), str(photos / "odd" / "gray16.png"),
                             str(photos / "odd" / "bomb.png"), str(tmp_path / "missing.jpg")])
    with pytest.raises(InputError, match="no images"):
        list_inputs([str(tmp_path / "empty")]) if (tmp_path / "empty").mkdir() is None else None


def test_a_list_splits_at_newlines_only(tmp_path: Path) -> None:
    """File names may hold U+2028, \\x1c or \\x0c, which str.splitlines cuts (the adversarial pass:
    3 real images became 6 made-up paths); CRLF lists still read."""
    names = ["a\u2028b.jpg", "c\x1cd.jpg", "e\x0cf.jpg"]
    (tmp_path / "list.txt").write_bytes("\n".join(names).encode() + b"\n")
    (tmp_path / "crlf.txt").write_bytes(b"g.jpg\r\nh.jpg\r\n")
    listed = list_inputs([f"@{tmp_path / 'list.txt'}", f"@{tmp_path / 'crlf.txt'}"])
    assert listed == sorted(str(tmp_path / n) for n in [*names, "g.jpg", "h.jpg"])


@pytest.mark.parametrize("source", ["/dev/zero", "fifo", "folder"])
def test_a_list_that_is_not_a_regular_file_is_one_line(tmp_path: Path, source: str) -> None:
    """@/dev/zero read until memory ran out; a FIFO would block: refused before reading."""
    path = {"fifo": tmp_path / "fifo", "folder": tmp_path}.get(source, Path(source))
    if source == "fifo":
        os.mkfifo(path)
    with pytest.raises(InputError, match="not a regular file"):
        list_inputs([f"@{path}"])


def _make_listed(tmp_path: Path, kind: str) -> tuple[str, socket.socket | None]:
    """A path of ``kind`` to name in a list, and the socket to close for a socket."""
    path = tmp_path / f"{kind}.jpg"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        return str(path), sock
    elif kind == "device":
        return "/dev/null", None
    return str(path), None  # "missing": nothing made


@pytest.mark.parametrize("kind, status", [
    ("missing", "image not found: {path}"),
    # The adversarial pass: a FIFO (or a folder, a device) was "image not found", though it is there.
    ("fifo", "not a regular file (a FIFO): {path}"),
    ("folder", "not a regular file (a folder): {path}"),
    ("device", "not a regular file (a character device): {path}"),
    ("socket", "not a regular file (a socket): {path}"),
])
def test_a_listed_path_that_is_not_an_image_file_is_a_row_saying_what_it_is(
        resnet20_onnx: Path, photos: Path, tmp_path: Path, kind: str, status: str) -> None:
    """Each is its own row, and none is opened to wait on (a FIFO without a writer would block)."""
    listed, sock = _make_listed(tmp_path, kind)
    try:
        (tmp_path / "list.txt").write_text(f"{photos / 'a' / 'photo001.jpg'}\n{listed}\n")
        run_batch(_options(resnet20_onnx, [f"@{tmp_path / 'list.txt'}"], tmp_path / "out"))
    finally:
        if sock is not None:
            sock.close()
    rows = {r["path"]: r["status"] for r in _table(tmp_path / "out").to_pylist()}
    assert rows == {str(photos / "a" / "photo001.jpg"): "ok", listed: status.format(path=listed)}


def test_one_folder_one_run(tmp_path: Path) -> None:
    with claim(tmp_path / "out"):
        with pytest.raises(OutputPathError, match="another batch run is writing"):
            with claim(tmp_path / "out"):
                pass


def test_a_run_leaves_no_temporary_file_however_it_ends(tmp_path: Path) -> None:
    """Third adversarial pass B4: one Ctrl-C in about 24 left a shard's temporary file, created a
    moment before the writer's cleanup was in place. The folder's lock holder removes them as it goes."""
    with pytest.raises(KeyboardInterrupt), claim(tmp_path / "out"):
        (tmp_path / "out" / ".part-00003.parquet.k1ll3d00.tmp").write_bytes(b"half a shard")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path / "out") == []


def test_a_worker_ends_when_its_input_ends(resnet20_onnx: Path, photos: Path) -> None:
    """What a SIGKILL of the main process leaves a worker: its stdin at its end (the kernel closes
    the pipe). An idle worker must exit at once, not wait for work forever."""
    import pickle
    import subprocess
    import sys

    with Predictor(resnet20_onnx, provider="cpu") as predictor:
        spec = decode_spec(predictor)
    proc = subprocess.Popen([sys.executable, "-m", "resnet_deploy.serving.batch.worker"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        pickle.dump(spec, proc.stdin)
        pickle.dump((str(photos / "odd" / "cmyk.jpg"), str(photos / "odd" / "zero.jpg")), proc.stdin)
        proc.stdin.flush()
        decoded = pickle.load(proc.stdout)  # answered, and now idle
        assert decoded.statuses[0] == "ok" and "not a readable image" in decoded.statuses[1]
        time.sleep(0.5)
        assert proc.poll() is None
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()


def test_a_profile_runs_its_model_in_its_configuration(clean: Path, resnet20_onnx: Path, photos: Path,
                                                       tmp_path: Path) -> None:
    from resnet_deploy._hashing import file_sha256
    from resnet_deploy._machine import machine
    from resnet_deploy.profile.deployment import DeploymentProfile, save_profile

    profile = tmp_path / "profile.json"
    save_profile(DeploymentProfile(str(resnet20_onnx), model_sha256(resnet20_onnx), "cpu", "onnxruntime", "fp32", 1,
                                   {"optimization": "all", "threads": 1}, {"p50_ms": 1.0}, machine()), profile)
    result = run_cli("batch", "--profile", profile, photos / "odd", "-o", tmp_path / "out", "--shard-size", SHARD)
    assert result.returncode == 0 and "1 inference thread" in result.stdout, result.stderr
    assert _manifest(tmp_path / "out")["key"]["profile_sha256"] == file_sha256(profile)
    odd = [r for r in _table(clean).to_pylist() if "/odd/" in r["path"]]
    assert _table(tmp_path / "out").to_pylist() == odd
    refused = run_cli("batch", "--profile", profile, photos / "odd", "-o", tmp_path / "other", "--threads", "2")
    assert_clean_failure(refused, "a profile sets the provider and threads")


def test_a_worker_killed_mid_job_costs_a_restart_not_the_job(clean: Path, resnet20_onnx: Path, photos: Path,
                                                             tmp_path: Path) -> None:
    """As the system's out-of-memory killer would: SIGKILL to a decode worker while it holds work."""
    seen: set[int] = set()
    killed: list[int] = []

    def kill_one(progress: BatchProgress) -> None:
        workers = _workers()
        seen.update(p.pid for p in workers)
        if progress.done >= 2 * 16 and not killed:
            killed.append(workers[0].pid)
            workers[0].kill()

    result = run_batch(_options(resnet20_onnx, [photos], tmp_path / "out", shard_size=SHARD), progress=kill_one)
    assert killed and len(seen) > 1  # a new worker took over
    assert result.failed == 5 and _table(tmp_path / "out").equals(_table(clean))


class _StubPool:
    """A pool whose worker dies on the paths in ``deadly``, every time."""

    def __init__(self, deadly: set[str]) -> None:
        self.deadly, self.queue, self.restarts = deadly, [], 0

    def submit(self, paths: tuple[str, ...]) -> None:
        self.queue.append(paths)

    def result(self) -> Decoded:
        (path,) = self.queue.pop(0)
        if path in self.deadly:
            raise WorkerDied("a decode worker died (killed by SIGSEGV)")
        return Decoded((path,), ("ok",), (((0,), np.full((1, 3, 2, 2), len(path), np.float32)),))

    def restart(self) -> None:
        self.queue, self.restarts = [], self.restarts + 1


def test_an_image_that_kills_its_decoder_is_a_row_and_a_dead_batch_an_error() -> None:
    pool = _StubPool({"bb"})
    decoded = decode_alone(pool, ("a", "bb", "ccc"), WorkerDied("first death"))
    assert decoded.statuses[0] == decoded.statuses[2] == "ok" and "its decoder died on it, twice" in decoded.statuses[1]
    ((rows, batch),) = decoded.groups
    assert rows == (0, 2) and batch[:, 0, 0, 0].tolist() == [1, 3] and pool.restarts == 2
    with pytest.raises(WorkerDied, match="first death"):  # every image dies: not the images' fault
        decode_alone(_StubPool({"a", "bb"}), ("a", "bb"), WorkerDied("first death"))


def test_sending_work_to_a_dead_worker_waits_for_its_turn_to_say_so(resnet20_onnx: Path, photos: Path) -> None:
    """A worker killed while others still answer: submit() never raises (the pipe is broken);
    result() reports the death when that worker's turn comes, so recovery sees it in order."""
    with Predictor(resnet20_onnx, provider="cpu") as predictor:
        spec = decode_spec(predictor)
    image = str(photos / "odd" / "cmyk.jpg")
    with DecodePool(2, spec) as pool:
        pool.submit((image,))
        assert pool.result().statuses == ("ok",)  # both workers are up
        for worker in _workers():
            worker.kill()
            while worker.status() != psutil.STATUS_ZOMBIE:  # dead, and left for the pool to reap
                time.sleep(0.01)
        for _ in range(4):
            pool.submit((image,))
        with pytest.raises(WorkerDied, match="killed by SIGKILL"):
            pool.result()


# -- the adversarial pass's findings (issue 26 D: a fresh pass over batch) ----------------------------

def test_links_to_folders_are_not_followed_by_patterns(photos: Path, tmp_path: Path) -> None:
    """`loop/**` over `loop/self -> .` listed one image 41 times (two such links: forever); an
    empty subfolder a pattern matches is skipped, where a folder named by the user must hold images."""
    loop = tmp_path / "loop"
    (loop / "empty").mkdir(parents=True)
    image = next(photos.rglob("*.jpg"))
    shutil.copyfile(image, loop / "x.jpg")
    (loop / "self").symlink_to(".")
    (loop / "again").symlink_to(".")
    for pattern in (f"{loop}/**", f"{loop}/*", f"{loop}/**/*.jpg"):
        assert list_inputs([pattern]) == [str(loop / "x.jpg")], pattern
    with pytest.raises(InputError, match="no images"):
        list_inputs([str(loop / "empty")])


def test_dot_dot_after_a_link_is_the_file_open_reads(photos: Path, tmp_path: Path) -> None:
    """`top/link/../cat.jpg`, with `link -> ../real/deep`, is real/cat.jpg (as predict reads it), not top/cat.jpg."""
    image = next(photos.rglob("*.jpg"))
    (tmp_path / "real" / "deep").mkdir(parents=True)
    (tmp_path / "top").mkdir()
    shutil.copyfile(image, tmp_path / "real" / "cat.jpg")
    (tmp_path / "top" / "link").symlink_to("../real/deep")
    assert list_inputs([str(tmp_path / "top" / "link" / ".." / "cat.jpg")]) == [str(tmp_path / "real" / "cat.jpg")]


def test_a_name_with_another_line_separator_resumes(resnet20_onnx: Path, photos: Path, tmp_path: Path) -> None:
    """Names holding U+2028, U+0085 or \\x1c passed the line-break check, then split the stored list
    apart on reading it back: every rerun was refused."""
    folder = tmp_path / "odd"
    folder.mkdir()
    image = next(photos.rglob("*.jpg"))
    for name in ("a\u2028b.jpg", "c\u0085d.jpg", "e\x1cf.jpg"):
        shutil.copyfile(image, folder / name)
    out = tmp_path / "out"
    run_batch(_options(resnet20_onnx, [folder], out))
    again = run_batch(_options(resnet20_onnx, [folder], out))
    assert again.shards_written == 0 and _table(out).num_rows == 3


def test_a_users_lone_input_list_is_not_replaced(resnet20_onnx: Path, photos: Path, tmp_path: Path) -> None:
    """`batch @work/_inputs.txt -o work` replaced the user's list with the expanded one."""
    work = tmp_path / "work"
    work.mkdir()
    listing = work / "_inputs.txt"
    listing.write_text(str(next(photos.rglob("*.jpg"))) + "\n")
    before = listing.read_bytes()
    with pytest.raises(OutputPathError, match="without a manifest"):
        run_batch(_options(resnet20_onnx, [f"@{listing}"], work))
    assert listing.read_bytes() == before


def test_a_folder_written_while_the_inputs_were_listed_is_not_cleared(resnet20_onnx: Path, photos: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder's state was read before the inputs were listed and the lock taken after: a job
    another run finished meanwhile was cleared without --force. It is read again under the lock."""
    from resnet_deploy.serving.batch import job as job_module

    out = tmp_path / "out"
    real = job_module.list_inputs

    def slow_listing(specs: object) -> list[str]:  # another run finishes a job here while this one lists
        monkeypatch.setattr(job_module, "list_inputs", real)  # the other run lists as usual
        run_batch(_options(resnet20_onnx, [next(photos.rglob("*.jpg"))], out))
        return real(specs)  # type: ignore[arg-type]

    monkeypatch.setattr(job_module, "list_inputs", slow_listing)
    with pytest.raises(OutputPathError, match="changed while the inputs were listed"):
        run_batch(_options(resnet20_onnx, [photos], out, top_k=3))
    assert _table(out).num_rows == 1  # the other run's job, intact


def test_an_image_input_batch_runs_within_the_pixel_budget(resnet20_onnx: Path, tmp_path: Path) -> None:
    """A batch of large images for a model that resizes in its graph is cut by total pixels, as
    predict's runs are (issue 26 B.2): 16 photos of 1500x1500 stacked whole would have the graph
    resize 36 M pixels at once; each run holds at most BATCH_PIXELS (here one image: 2.25 M each)."""
    from PIL import Image

    from resnet_deploy.runtime.raw_images import BATCH_PIXELS

    float_model = load_onnx(resnet20_onnx)
    model = tmp_path / "r20_images.onnx"
    save_onnx(add_image_input(float_model, ImageInputSpec(preprocessing_for(float_model), 0)), model)
    paths = []
    for i, side in enumerate([1500, 1500, 1500, 64, 64]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (side, side), (i * 40, 90, 200)).save(paths[-1])
    with Predictor(model, provider="cpu") as predictor:
        decoded = decode_batch(paths, decode_spec(predictor))
    runs = [(rows, batch.shape) for rows, batch in decoded.groups]
    assert runs == [((0,), (1, 1500, 1500, 3)), ((1,), (1, 1500, 1500, 3)), ((2,), (1, 1500, 1500, 3)),
                    ((3, 4), (2, 64, 64, 3))]
    assert all(batch.shape[0] * batch.shape[1] * batch.shape[2] <= BATCH_PIXELS or batch.shape[0] == 1
               for _, batch in decoded.groups)
