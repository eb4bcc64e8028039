"""Triton repository entries, validated with Triton's own ModelConfig protobuf."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2 as mc
from typer.testing import CliRunner

import resnet_deploy as rd
from resnet_deploy.serving import triton as triton_module
from resnet_deploy._atomic import folders
from resnet_deploy.export.exporter import ExportOptions, export_model
from resnet_deploy.export.pipeline import ort_outputs
from resnet_deploy.runtime.session import THREADS_PER_CORE, cpu_count
from resnet_deploy.serving.triton import TritonOptions, write_triton_repository
from resnet_deploy_cli.main import app


def parse(entry_path: Path) -> mc.ModelConfig:
    return text_format.Parse((entry_path / "config.pbtxt").read_text(), mc.ModelConfig())


def onnx_dims(v: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]


@pytest.mark.parametrize("provider, kind", [("cpu", mc.ModelInstanceGroup.KIND_CPU),
                                            ("cuda", mc.ModelInstanceGroup.KIND_GPU),
                                            ("tensorrt", mc.ModelInstanceGroup.KIND_GPU),
                                            ("openvino", mc.ModelInstanceGroup.KIND_CPU)])
def test_config_matches_the_onnx_file(tmp_path: Path, resnet20_onnx: Path, provider: str, kind: int) -> None:
    entry = write_triton_repository(resnet20_onnx, tmp_path / "repo",
                                    TritonOptions(provider=provider, instances=2, fp16=provider == "tensorrt"))
    cfg = parse(entry.path)
    model = onnx.load(str(entry.model_path))
    assert cfg.name == "resnet20" and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 32
    assert [i.name for i in cfg.input] == [i.name for i in model.graph.input]
    assert list(cfg.input[0].dims) == onnx_dims(model.graph.input[0])[1:] == [3, 32, 32]
    assert cfg.input[0].data_type == mc.TYPE_FP32 and cfg.input[0].format == mc.ModelInput.FORMAT_NCHW
    assert [o.name for o in cfg.output] == ["logits"] and list(cfg.output[0].dims) == [10]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8, 16, 32]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 100
    assert cfg.instance_group[0].count == 2 and cfg.instance_group[0].kind == kind
    accel = cfg.optimization.execution_accelerators
    if provider == "tensorrt":
        trt = accel.gpu_execution_accelerator[0]
        assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == "FP16"
    elif provider == "openvino":
        assert accel.cpu_execution_accelerator[0].name == "openvino"
    else:
        assert not accel.gpu_execution_accelerator and not accel.cpu_execution_accelerator
    # The copied model is the same model.
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    np.testing.assert_array_equal(ort_outputs(model, x), ort_outputs(onnx.load(str(resnet20_onnx)), x))


def test_static_batch_model_gets_full_dims(tmp_path: Path) -> None:
    path = tmp_path / "static.onnx"
    export_model(ExportOptions("resnet20", static_batch=4), path)
    entry = write_triton_repository(path, tmp_path / "repo", TritonOptions(name="r20_static"))
    cfg = parse(entry.path)
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims) == [4, 3, 32, 32]
    assert not cfg.HasField("dynamic_batching")
    assert entry.path.name == "r20_static"
    # The default said nothing of batching: a note says what was written. An explicit 0: silence.
    assert entry.notes == [f"{path} has a fixed batch of 4: wrote max_batch_size 0 (no dynamic batching; every request "
                           "is one tensor of [4, 3, 32, 32]); re-export with a dynamic batch to let Triton batch"]
    assert write_triton_repository(path, tmp_path / "repo", TritonOptions(name="zero", max_batch_size=0)).notes == []
    # Batching asked for explicitly cannot be honoured: refused, nothing written.
    with pytest.raises(rd.OnnxModelError) as info:
        write_triton_repository(path, tmp_path / "repo", TritonOptions(name="asked", max_batch_size=32))
    assert str(info.value) == (f"{path} has a fixed batch of 4: Triton cannot batch it; "
                               "pass --max-batch-size 0 or re-export with a dynamic batch")
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["r20_static", "zero"]


def test_existing_entry_needs_force(tmp_path: Path, resnet20_onnx: Path) -> None:
    repo = tmp_path / "repo"
    write_triton_repository(resnet20_onnx, repo, TritonOptions())
    config = (repo / "resnet20" / "config.pbtxt").read_text()
    runner = CliRunner()
    r = runner.invoke(app, ["triton", str(resnet20_onnx), "-r", str(repo), "--instances", "3"])
    assert r.exit_code == 1 and "already exists; pass --force" in r.output
    assert (repo / "resnet20" / "config.pbtxt").read_text() == config
    r = runner.invoke(app, ["triton", str(resnet20_onnx), "-r", str(repo), "--instances", "3", "--force"])
    assert r.exit_code == 0 and parse(repo / "resnet20").instance_group[0].count == 3
    assert sorted(p.name for p in repo.iterdir()) == ["resnet20"]  # no staging or backup left


def test_bad_input(tmp_path: Path, resnet20_onnx: Path) -> None:
    two_inputs = tmp_path / "two.onnx"
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 3, 4, 4]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(two_inputs))
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    runner = CliRunner()
    cases = [
        (["triton", str(two_inputs), "-r", str(tmp_path / "r1")], "one image input"),
        (["triton", str(resnet20_onnx), "-r", str(not_a_folder)], "not a folder"),
        (["triton", str(resnet20_onnx), "-r", str(tmp_path / "r2"), "--provider", "tpu"], "unknown provider"),
        (["triton", str(resnet20_onnx), "-r", str(tmp_path / "r3"), "--fp16"], "tensorrt provider only"),
        (["triton", str(resnet20_onnx), "-r", str(tmp_path / "r4"), "--name", "../evil"], "invalid model name"),
    ]
    for args, needle in cases:
        r = runner.invoke(app, args)
        print(r.output)
        assert r.exit_code == 1 and needle in r.output and "Traceback" not in r.output
    assert not (tmp_path / "r1" / "two").exists()


# -- --force replaces an entry so that the path always holds a complete one, old or new --------------

def _entry_state(entry: Path) -> int:
    """The instance count of a complete entry (config.pbtxt that parses, and 1/model.onnx)."""
    assert (entry / "1" / "model.onnx").is_file() and onnx.load(str(entry / "1" / "model.onnx")).graph.node
    return parse(entry).instance_group[0].count


@pytest.fixture
def old_entry(tmp_path: Path, resnet20_onnx: Path) -> Path:
    repo = tmp_path / "repo"
    write_triton_repository(resnet20_onnx, repo, TritonOptions(name="m", instances=1))
    return repo


def test_force_swaps_in_one_step(old_entry: Path, resnet20_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupted right after the swap: the entry is the new one, complete; the old one is gone."""
    swapped = []
    real = folders.exchange

    def swap_then_interrupt(a: Path, b: Path) -> bool:
        swapped.append(real(a, b))
        raise KeyboardInterrupt

    monkeypatch.setattr(folders, "exchange", swap_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_triton_repository(resnet20_onnx, old_entry, TritonOptions(name="m", instances=2, force=True))
    assert swapped == [True]  # renameat2(RENAME_EXCHANGE) did the swap on this machine
    assert _entry_state(old_entry / "m") == 2
    assert sorted(p.name for p in old_entry.iterdir()) == ["m"]


@pytest.mark.parametrize("cut", ["target-aside", "new-in-place"])
def test_fallback_renames_never_leave_neither(old_entry: Path, resnet20_onnx: Path, monkeypatch: pytest.MonkeyPatch,
                                              cut: str) -> None:
    """Without renameat2: interrupted after the old entry is renamed aside, the old entry is put
    back; after the new one is in place, the new one stays. Either way one complete entry."""
    monkeypatch.setattr(folders, "exchange", lambda a, b: False)
    real = Path.rename

    def rename(self: Path, dst: Path) -> Path:
        out = real(self, dst)
        if (cut == "target-aside" and Path(dst).name == ".m.old") or (cut == "new-in-place" and Path(dst).name == "m"):
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        write_triton_repository(resnet20_onnx, old_entry, TritonOptions(name="m", instances=2, force=True))
    monkeypatch.setattr(Path, "rename", real)
    assert _entry_state(old_entry / "m") == (1 if cut == "target-aside" else 2)
    left = sorted(p.name for p in old_entry.iterdir())
    assert left == ["m"] or (cut == "new-in-place" and left == [".m.old", "m"]), left
    entry = write_triton_repository(resnet20_onnx, old_entry, TritonOptions(name="m", instances=3, force=True))
    assert _entry_state(entry.path) == 3 and sorted(p.name for p in old_entry.iterdir()) == ["m"]


def test_next_run_restores_an_entry_left_aside(old_entry: Path, resnet20_onnx: Path) -> None:
    """A process killed between the two renames (SIGKILL: no finally runs) leaves only .m.old:
    the next run puts it back before anything else, and says so."""
    (old_entry / "m").rename(old_entry / ".m.old")
    with pytest.raises(rd.OutputPathError, match="already exists; pass --force"):
        write_triton_repository(resnet20_onnx, old_entry, TritonOptions(name="m", instances=2))
    assert _entry_state(old_entry / "m") == 1 and sorted(p.name for p in old_entry.iterdir()) == ["m"]
    (old_entry / "m").rename(old_entry / ".m.old")
    entry = write_triton_repository(resnet20_onnx, old_entry, TritonOptions(name="m", instances=2, force=True))
    assert entry.notes == [f"restored {old_entry / 'm'} from .m.old, left there by an interrupted --force"]
    assert _entry_state(entry.path) == 2 and sorted(p.name for p in old_entry.iterdir()) == ["m"]


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_force_over_a_file_or_link_leaves_nothing_beside(tmp_path: Path, resnet20_onnx: Path, kind: str) -> None:
    """--force where a file or a symlink (to a folder elsewhere) stands at the entry's path: the
    entry replaces it and nothing is left in the repository (the swap used to leave the old file
    or link behind as `.m.xxxxxxxx`); a link's target is never followed."""
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    (elsewhere / "1").mkdir(parents=True)
    (elsewhere / "config.pbtxt").write_text("keep")
    if kind == "file":
        (repo / "m").write_text("a file of the user's")
    else:
        (repo / "m").symlink_to(elsewhere)
    entry = write_triton_repository(resnet20_onnx, repo, TritonOptions(name="m", instances=2, force=True))
    assert _entry_state(entry.path) == 2 and not entry.path.is_symlink()
    assert sorted(p.name for p in repo.iterdir()) == ["m"]
    assert (elsewhere / "config.pbtxt").read_text() == "keep"


def test_a_name_too_long_is_refused_by_length(tmp_path: Path, resnet20_onnx: Path) -> None:
    """A 300-byte name ended in 'could not restore ... File name too long' (nothing was restored)."""
    with pytest.raises(rd.ResnetDeployError, match="is 300 bytes; an entry name may have at most 245"):
        write_triton_repository(resnet20_onnx, tmp_path / "repo", TritonOptions(name="n" * 300))
    entry = write_triton_repository(resnet20_onnx, tmp_path / "repo", TritonOptions(name="n" * 245))
    assert _entry_state(entry.path) == 1 and sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["n" * 245]


def test_onnxruntime_ops_for_tensorrt_or_openvino_are_noted(tmp_path: Path, resnet20_onnx: Path) -> None:
    """A file of optimize --target cpu holds com.microsoft.FusedConv, which TensorRT and OpenVINO
    cannot run: the entry is written (onnxruntime runs those nodes elsewhere), and says so."""
    from resnet_deploy.export.optimize import optimize_file

    fused = tmp_path / "r20_cpu.onnx"
    optimize_file(resnet20_onnx, fused, "cpu")
    for provider in ("tensorrt", "openvino", "cpu"):
        entry = write_triton_repository(fused, tmp_path / "repo", TritonOptions(name=provider, provider=provider))
        noted = [n for n in entry.notes if "com.microsoft.FusedConv" in n]
        assert bool(noted) == (provider != "cpu"), entry.notes
        assert not noted or "optimize --target portable" in noted[0]
    entry = write_triton_repository(resnet20_onnx, tmp_path / "repo",
                                    TritonOptions(name="portable", provider="tensorrt"))
    assert entry.notes == []


# -- the config is structured data: names are escaped, never pasted ---------------------------------

def _renamed_input(source: Path, path: Path, name: str) -> Path:
    model = onnx.load(str(source))
    old = model.graph.input[0].name
    model.graph.input[0].name = name
    for node in model.graph.node:
        node.input[:] = [name if i == old else i for i in node.input]
    onnx.save(model, str(path))
    return path


INJECTION = ('input"\n  data_type: TYPE_FP32 dims: [ 1 ] }\n]\n'
             'instance_group [ { count: 64 kind: KIND_GPU } ]\ninput [ { name: "x')


def test_a_name_that_would_inject_is_refused(tmp_path: Path, resnet20_onnx: Path) -> None:
    """The name the issue used: a quote and newlines that closed the input block and opened an
    instance_group of 64 GPUs. Triton cannot serve a name with control characters: refused in
    one line, nothing written."""
    bad = _renamed_input(resnet20_onnx, tmp_path / "bad.onnx", INJECTION)
    r = CliRunner().invoke(app, ["triton", str(bad), "-r", str(tmp_path / "repo")])
    print(r.output)
    assert r.exit_code == 1 and "control characters" in r.output and r.output.count("\n") == 1
    assert not (tmp_path / "repo" / "bad").exists()


@pytest.mark.parametrize("name",
                         ['in"put', "in\\put",
                          'a" } ] instance_group [ { count: 64 kind: KIND_GPU } ] x "', "входные данные"])
def test_any_printable_name_is_escaped_and_reads_back(tmp_path: Path, resnet20_onnx: Path, name: str) -> None:
    """Quotes, backslashes, braces and non-ASCII are written escaped: Triton's own parser reads
    back exactly the name, and nothing else than the one input and the one instance group."""
    model = _renamed_input(resnet20_onnx, tmp_path / "odd.onnx", name)
    entry = write_triton_repository(model, tmp_path / "repo", TritonOptions(name="odd"))
    cfg = parse(entry.path)
    assert [i.name for i in cfg.input] == [name]
    assert len(cfg.instance_group) == 1 and cfg.instance_group[0].count == 1
    assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU


def test_stale_staging_of_a_killed_run_is_removed(tmp_path: Path, resnet20_onnx: Path) -> None:
    """SIGKILL runs no cleanup: a staging folder whose writer is gone (its marker unlocked) is
    removed by the next run; one a live writer holds locked (a concurrent run) and anything
    without our marker stay."""
    import fcntl

    from resnet_deploy._atomic import STAGING_MARKER

    repo = tmp_path / "repo"
    repo.mkdir()
    stale, live, foreign = repo / ".m.deadbeef", repo / ".m.livelive", repo / ".m.userfile"
    for folder in (stale, live):
        (folder / "1").mkdir(parents=True)
        (folder / STAGING_MARKER).write_text("")
        os.utime(folder / STAGING_MARKER, (0, 0))  # older than the margin a writer has to lock it
    foreign.mkdir()
    with open(live / STAGING_MARKER) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        write_triton_repository(resnet20_onnx, repo, TritonOptions(name="m"))
    assert sorted(p.name for p in repo.iterdir()) == [".m.livelive", ".m.userfile", "m"]
    assert not (repo / "m" / STAGING_MARKER).exists()


# -- the Python backend: Predictor inside Triton, for what the onnxruntime backend cannot express -----

def test_python_entry_serves_the_profile_as_tuned(tmp_path: Path, resnet20_onnx: Path) -> None:
    from resnet_deploy.profile.deployment import DeploymentProfile, file_sha256, load_profile, save_profile
    from resnet_deploy._machine import machine

    profile_path = tmp_path / "r20.profile.json"
    tuned = DeploymentProfile(model=str(resnet20_onnx), model_sha256=file_sha256(resnet20_onnx), provider="openvino",
                              backend="openvino-runtime", precision="bf16", batch_size=4,
                              session={"openvino_precision": "BF16", "static_batch": 4},
                              measured={"p50_ms": 1.0}, machine=machine())
    save_profile(tuned, profile_path)
    backend, why = triton_module.profile_backend(tuned)
    assert backend == "python" and "openvino-runtime" in why and "BF16" in why and "batch of 4" in why
    r = CliRunner().invoke(app, ["triton", "--profile", str(profile_path), "-r", str(tmp_path / "repo")])
    assert r.exit_code == 0, r.output
    assert "Python-backend entry" in r.output
    entry = tmp_path / "repo" / resnet20_onnx.stem  # named after the model, as without a profile
    cfg = parse(entry)
    # Predictor chunks to its batch of 4
    assert cfg.backend == "python" and not cfg.platform and cfg.max_batch_size == 32
    assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert (entry / "1" / "model.py").read_text() == triton_module.PYTHON_MODEL.read_text()
    served = load_profile(entry / "1" / "profile.json")  # the copy's SHA-256 and machine still hold
    assert served.model == "model/model.onnx" and served.session == tuned.session
    # Asked for the onnxruntime backend explicitly: written, and the note says it is not as tuned.
    r = CliRunner().invoke(app, ["triton", "--profile", str(profile_path), "-r", str(tmp_path / "repo"),
                                 "--name", "ort", "--backend", "onnxruntime"])
    assert r.exit_code == 0 and "does NOT serve the profile as tuned" in r.output
    assert parse(tmp_path / "repo" / "ort").platform == "onnxruntime_onnx"


@pytest.mark.parametrize("instances", [65, 256])
def test_a_profiles_instances_are_bounded_by_its_own_field(tmp_path: Path, resnet20_onnx: Path, instances: int) -> None:
    """A layout from a hand-edited profile (or from tune on a machine of more cores than the bound) is
    refused naming the profile's field, not an --instances the user never gave."""
    from resnet_deploy.profile.deployment import DeploymentProfile, ServingLayout, file_sha256, save_profile
    from resnet_deploy._machine import machine
    from resnet_deploy.serving.triton.tuned import options_from_profile

    profile_path = tmp_path / "r20.profile.json"
    save_profile(DeploymentProfile(model=str(resnet20_onnx), model_sha256=file_sha256(resnet20_onnx), provider="cpu",
                                   backend="onnxruntime", precision="fp32", batch_size=1, session={"threads": 1},
                                   measured={}, machine=machine(),
                                   serving=ServingLayout(instances=instances, threads=1)),
                 profile_path)
    with pytest.raises(rd.InputError, match=f"serving.instances must be an integer from 1 to 64, received {instances}"):
        options_from_profile(profile_path, TritonOptions())
    assert options_from_profile(profile_path, TritonOptions(), instances=2).options.instances == 2  # --instances wins


def test_threads_reach_either_backend(tmp_path: Path, resnet20_onnx: Path) -> None:
    ort_entry = write_triton_repository(resnet20_onnx, tmp_path / "repo",
                                        TritonOptions(name="a", threads=2, instances=3))
    assert parse(ort_entry.path).parameters["intra_op_thread_count"].string_value == "2"
    py_entry = write_triton_repository(resnet20_onnx, tmp_path / "repo",
                                       TritonOptions(name="b", threads=2, backend="python"))
    assert parse(py_entry.path).parameters["resnet_deploy_threads"].string_value == "2"
    with pytest.raises(rd.InputError, match="--threads must be an integer from 1"):
        write_triton_repository(resnet20_onnx, tmp_path / "repo", TritonOptions(name="c", threads=0))


def test_image_input_file_takes_uint8_pixels_of_any_size(tmp_path: Path, resnet20_onnx: Path) -> None:
    """A file with the preprocessing inside: uint8 [-1, -1, 3] with no NCHW format, every output on
    the onnxruntime backend, the logits (what Predictor answers) on the Python backend; OpenVINO,
    whose antialiased Resize differs from PIL's, is refused in one line."""
    from resnet_deploy.image_input import ImageInputSpec, add_image_input, preprocessing_for

    source = onnx.load(str(resnet20_onnx))
    image = tmp_path / "r20_image.onnx"
    onnx.save(add_image_input(source, ImageInputSpec(preprocessing_for(source), top_k=3)), str(image))
    cfg = parse(write_triton_repository(image, tmp_path / "repo", TritonOptions(name="ort")).path)
    assert cfg.input[0].name == "image" and cfg.input[0].data_type == mc.TYPE_UINT8
    assert list(cfg.input[0].dims) == [-1, -1, 3] and cfg.input[0].format == mc.ModelInput.FORMAT_NONE
    assert [(o.name, list(o.dims)) for o in cfg.output] == [("logits", [10]), ("scores", [10]), ("top_k_scores", [3]),
                                                            ("top_k_indices", [3])]
    assert cfg.output[3].data_type == mc.TYPE_INT64
    cfg = parse(write_triton_repository(image, tmp_path / "repo", TritonOptions(name="py", backend="python")).path)
    assert [o.name for o in cfg.output] == ["logits"]
    r = CliRunner().invoke(app, ["triton", str(image), "-r", str(tmp_path / "repo"), "--provider", "openvino"])
    assert r.exit_code == 1 and "serve it with --provider cpu" in r.output and r.output.count("\n") == 1


@pytest.mark.parametrize("backend", ["onnxruntime", "python"])
def test_a_profile_entry_holds_the_bytes_that_were_verified(tmp_path: Path, resnet20_onnx: Path, backend: str) -> None:
    """The entry is written from the one read whose digest matched the profile: a model changed
    after tune is refused, and the entry's model (and, on the Python backend, its profile copy)
    is the tuned one."""
    import shutil

    from resnet_deploy._machine import machine
    from resnet_deploy.profile.deployment import DeploymentProfile, load_profile, model_sha256, save_profile

    model = tmp_path / "m.onnx"
    shutil.copyfile(resnet20_onnx, model)
    profile = tmp_path / "m.json"
    save_profile(DeploymentProfile(model="m.onnx", model_sha256=model_sha256(model), provider="cpu",
                                   backend="onnxruntime", precision="fp32", batch_size=1, session={"threads": 1},
                                   measured={}, machine=machine()), profile)
    entry = write_triton_repository(model, tmp_path / "repo", TritonOptions(name="m", backend=backend, profile=profile))
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    np.testing.assert_array_equal(ort_outputs(onnx.load(str(entry.model_path)), x),
                                  ort_outputs(onnx.load(str(model)), x))
    if backend == "python":
        assert load_profile(entry.path / "1" / "profile.json").model == "model/model.onnx"  # its digest holds
    tampered = onnx.load(str(model))
    tampered.graph.initializer[0].raw_data = bytes(len(tampered.graph.initializer[0].raw_data))
    onnx.save(tampered, str(model))
    with pytest.raises(rd.ResnetDeployError, match="changed since it was tuned"):
        write_triton_repository(model, tmp_path / "repo", TritonOptions(name="m2", backend=backend, profile=profile))
    assert not (tmp_path / "repo" / "m2").exists()


# -- issue 26 A.1: a file beside the model never becomes code -----------------------------------------

def _with_external_data(source: Path, folder: Path, location: str) -> Path:
    """``source`` with one unused uint8 initializer stored as external data at ``location``, and
    the model's own weights as external data in ``data/w.bin`` (a legitimate layout)."""
    model = onnx.load(str(source))
    model.graph.initializer.append(helper.make_tensor("unused", TensorProto.UINT8, [8], b"PAYLOAD!", raw=True))
    (folder / "data").mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "r20.onnx"), save_as_external_data=True, location="data/w.bin", size_threshold=0)
    model = onnx.load(str(folder / "r20.onnx"), load_external_data=False)
    unused = next(t for t in model.graph.initializer if t.name == "unused")
    del unused.external_data[:]
    unused.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "8")):
        unused.external_data.add(key=key, value=value)
    (folder / location).parent.mkdir(parents=True, exist_ok=True)
    (folder / location).write_bytes(b"PAYLOAD!" if location.endswith(".bin") else b"open('pwned', 'w')  # ..")
    onnx.save(model, str(folder / "r20.onnx"))
    return folder / "r20.onnx"


@pytest.mark.parametrize("location", ["model.py", "sub/model.py", "profile.json", "sub/model.onnx", "1/model.py",
                                      "config.pbtxt", "model/model.py"])
def test_an_external_data_file_never_takes_the_place_of_a_generated_file(tmp_path: Path, resnet20_onnx: Path,
                                                                       location: str) -> None:
    """Each crafted name stays inside the entry's model folder: model.py is ours, byte for byte,
    and the entry still serves the model (its logits equal the source's)."""
    from resnet_deploy.graph.io import load_onnx

    model = _with_external_data(resnet20_onnx, tmp_path / "evil", location)
    entry = write_triton_repository(model, tmp_path / "repo", TritonOptions(name="m", backend="python"))
    version = entry.path / "1"
    assert (version / "model.py").read_bytes() == triton_module.PYTHON_MODEL.read_bytes()
    assert sorted(p.name for p in version.iterdir()) == ["model", "model.py"]
    assert (entry.path / "config.pbtxt").read_text() == entry.config
    assert entry.model_path == version / "model" / "model.onnx"
    assert (version / "model" / location).read_bytes() == (tmp_path / "evil" / location).read_bytes()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    np.testing.assert_array_equal(ort_outputs(load_onnx(entry.model_path), x),
                                  ort_outputs(onnx.load(str(resnet20_onnx)), x))


def test_external_data_named_as_the_served_model_is_refused(tmp_path: Path, resnet20_onnx: Path) -> None:
    model = _with_external_data(resnet20_onnx, tmp_path / "evil", "model.onnx")
    r = CliRunner().invoke(app, ["triton", str(model), "-r", str(tmp_path / "repo"), "--backend", "python"])
    assert r.exit_code == 1 and "would take the place of the served model" in r.output and r.output.count("\n") == 1
    assert not (tmp_path / "repo" / "r20").exists()


def test_external_data_in_a_subfolder_serves(tmp_path: Path, resnet20_onnx: Path) -> None:
    """data/w.bin keeps its relative layout: Predictor opens the entry's model as Triton's stub would."""
    model = _with_external_data(resnet20_onnx, tmp_path / "ok", "data/extra.bin")
    entry = write_triton_repository(model, tmp_path / "repo", TritonOptions(name="m", backend="python"))
    assert (entry.path / "1" / "model" / "data" / "w.bin").is_file()
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32), dtype=np.float32)
    with rd.Predictor(entry.model_path, provider="cpu") as served, \
            rd.Predictor(resnet20_onnx, provider="cpu") as source:
        np.testing.assert_array_equal(served.run(x), source.run(x))


# -- a profile as an entry's options: one rule in the library for triton and serve (issue 27 §2) ----

def _profile(tmp_path: Path, model: Path, **fields: object) -> Path:
    import shutil

    from resnet_deploy._machine import machine
    from resnet_deploy.profile import DeploymentProfile, model_sha256, save_profile

    shutil.copyfile(model, tmp_path / "my model.onnx")
    values = dict(model="my model.onnx", model_sha256=model_sha256(tmp_path / "my model.onnx"), provider="cpu",
                  backend="onnxruntime", precision="fp32", batch_size=1, session={"threads": 2}, measured={},
                  machine=machine())
    values.update(fields)
    path = tmp_path / "p.json"
    save_profile(DeploymentProfile(**values), path)  # type: ignore[arg-type]
    return path


def test_a_profile_entry_is_named_as_a_file_entry(tmp_path: Path, resnet20_onnx: Path) -> None:
    """Issue 26 C.5: `triton --profile` of a model named `my model` said `invalid model name`
    where `triton "my model.onnx"` names it my_model: one rule (entry_name) for both."""
    from resnet_deploy.serving.triton import options_from_profile

    tuned = options_from_profile(_profile(tmp_path, resnet20_onnx), TritonOptions())
    assert tuned.options.name == "my_model" and tuned.options.threads == 2 and tuned.options.backend == "onnxruntime"
    r = CliRunner().invoke(app, ["triton", "--profile", str(tmp_path / "p.json"), "-r", str(tmp_path / "repo")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "repo" / "my_model" / "config.pbtxt").is_file()
    assert write_triton_repository(tmp_path / "my model.onnx", tmp_path / "repo2",
                                   TritonOptions()).path.name == "my_model"


@pytest.mark.parametrize("threads, needle", [
    (4096, "session.threads must be an integer from 1 to 1024, received 4096"),  # a --threads error before
    # More than this machine's cores allow: Triton refused the model after it started, naming no field.
    (THREADS_PER_CORE * cpu_count() + 1, "session.threads must be at most"),
])
def test_a_profiles_bad_threads_are_named_as_the_profiles(tmp_path: Path, resnet20_onnx: Path, threads: int,
                                                          needle: str) -> None:
    """Issue 26 C.5: a profile's session.threads out of bounds is named as the profile's field."""
    profile = _profile(tmp_path, resnet20_onnx, session={"threads": threads})
    r = CliRunner().invoke(app, ["triton", "--profile", str(profile), "-r", str(tmp_path / "repo")])
    print(r.output)
    assert r.exit_code == 1 and needle in r.output and f"received {threads}" in r.output
    assert "--threads" not in r.output and r.output.count("\n") == 1
