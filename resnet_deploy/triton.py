"""A Triton Inference Server model repository from an exported model.

Lays out ``REPO/NAME/config.pbtxt`` and ``REPO/NAME/1/model.onnx`` for Triton's onnxruntime
backend: inputs and outputs named, typed and shaped from the ONNX file itself, dynamic batching,
an instance group of the right kind, and the execution-accelerator settings for TensorRT and
OpenVINO. The entry is built in a temporary folder and moved into place; ``force`` swaps it with
the old entry in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so the path always holds a
complete entry, the old or the new one. Where that call is missing the old entry is renamed aside
first, and one left aside by an interruption is put back by the next run.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import glob
import errno
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from ._atomic import check_distinct
from ._errors import InputError, OnnxModelError, OutputPathError, ResnetDeployError
from .image_input_graph import is_image_input
from .onnx_io import image_input, load_onnx, model_files, save_onnx
from .passes.unfuse_fused_conv import is_standard
from .profile import DeploymentProfile, load_profile, load_profile_model, model_sha256, save_profile
from .triton_config import Enum, Field, Message, check_tensor_name, render

__all__ = ["TritonOptions", "TritonEntry", "write_triton_repository", "render_config", "build_config",
           "profile_backend", "TRITON_PROVIDERS", "TRITON_BACKENDS"]

TRITON_PROVIDERS = ("cpu", "cuda", "tensorrt", "openvino")
TRITON_BACKENDS = ("onnxruntime", "python")
# The Python backend's model.py, copied into every such entry as 1/model.py.
PYTHON_MODEL = Path(__file__).parent / "data" / "triton_python_model.py"
STAGING_MARKER = ".resnet-deploy-staging"  # holds the pid of the run that stages the entry
_TYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.BFLOAT16: "TYPE_BF16",
    onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64",
}
# Bounds of the numbers we write into config.pbtxt: beyond them Triton refuses the config (int32
# fields) or the entry is a mistake (a batch no GPU holds, an instance count no machine runs, a
# queue delay of more than a minute).
DEFAULT_MAX_BATCH_SIZE = 32  # for a dynamic batch when none is given; a fixed batch gets 0
MAX_BATCH_SIZE = 65536
MAX_INSTANCES = 256
MAX_THREADS = 1024
MAX_QUEUE_DELAY_US = 60_000_000
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# The entry is staged as `.NAME.` + 8 random characters and set aside as `.NAME.old`: 10 bytes
# more than the name, within the 255 a file name may have.
MAX_NAME_BYTES = 255 - 10


@dataclass
class TritonOptions:
    name: str | None = None
    max_batch_size: int | None = None  # None: DEFAULT_MAX_BATCH_SIZE, or 0 for a model with a fixed batch
    instances: int = 1
    provider: str = "cpu"
    fp16: bool = False
    queue_delay_us: int = 100
    force: bool = False
    backend: str = "onnxruntime"  # or "python": Predictor inside Triton's Python backend
    threads: int | None = None  # python backend: intra-op threads per instance (None: the profile's, or all cores)
    profile: str | Path | None = None  # python backend: serve this deployment profile as tuned


@dataclass
class TritonEntry:
    path: Path
    config_path: Path
    model_path: Path
    config: str
    notes: list[str] = field(default_factory=list)  # what the entry does that the options did not say


@dataclass
class _Tensor:
    name: str
    data_type: str
    dims: list[int]  # -1 for a dynamic dimension
    batch_dynamic: bool


def _tensor(v: onnx.ValueInfoProto, source: str) -> _Tensor:
    t = v.type.tensor_type
    if not v.type.HasField("tensor_type") or t.elem_type not in _TYPES:
        raise OnnxModelError(f"{source}: {v.name!r} is not a tensor of a type Triton's onnxruntime backend takes")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim]
    return _Tensor(v.name, _TYPES[t.elem_type], dims, bool(dims) and dims[0] == -1)


def _io(model: onnx.ModelProto, source: str) -> tuple[_Tensor, list[_Tensor]]:
    image = image_input(model, source)
    value = next(v for v in model.graph.input if v.name == image.name)
    if is_image_input(model):  # uint8 RGB [N, H, W, 3] of any size: the preprocessing is in the graph
        return _tensor(value, source), [_tensor(o, source) for o in model.graph.output]
    if any(d is None for d in image.shape[1:]):
        raise OnnxModelError(f"{source}: input {image.name!r} has dynamic C/H/W dims {image.describe()}; only the batch may be dynamic")
    if image.shape[1] not in (1, 3):
        raise OnnxModelError(f"{source} must have one image input [N, C, H, W] with 1 or 3 channels; it has {image.describe()}")
    return _tensor(value, source), [_tensor(o, source) for o in model.graph.output]


def _dims(t: _Tensor, batched: bool) -> list[int]:
    return t.dims[1:] if batched else t.dims


def _preferred_batches(max_batch: int) -> list[int]:
    sizes, b = [], 4
    while b <= max_batch:
        sizes.append(b)
        b *= 2
    return sizes or [max_batch]


def batching(model: onnx.ModelProto, options: TritonOptions, source: str = "model") -> tuple[int, str | None]:
    """The ``max_batch_size`` to write for ``model``, and a note when it is not the one asked for.

    Triton batches along a first dimension the model leaves dynamic; a model with a fixed batch
    gets 0 (its full shape, no batching): noted when that came from the default, refused when
    the user asked for batching explicitly. A Python-backend entry batches any model: its
    ``Predictor`` runs a fixed-batch file in chunks of its batch.
    """
    inp, _ = _io(model, source)
    if inp.batch_dynamic or options.backend == "python":
        return (DEFAULT_MAX_BATCH_SIZE if options.max_batch_size is None else options.max_batch_size), None
    fixed = inp.dims[0]
    if options.max_batch_size:
        raise OnnxModelError(f"{source} has a fixed batch of {fixed}: Triton cannot batch it; "
                             "pass --max-batch-size 0 or re-export with a dynamic batch")
    if options.max_batch_size == 0:
        return 0, None
    return 0, (f"{source} has a fixed batch of {fixed}: wrote max_batch_size 0 (no dynamic batching; every request "
               f"is one tensor of {inp.dims}); re-export with a dynamic batch to let Triton batch")


def _tensor_message(t: _Tensor, batched: bool, image: bool) -> Message:
    message = Message().add("name", t.name).add("data_type", Enum(t.data_type))
    if image and t.data_type in ("TYPE_FP32", "TYPE_FP16"):
        message.add("format", Enum("FORMAT_NCHW"))
    return message.add("dims", _dims(t, batched))


def _accelerators(options: TritonOptions) -> list[Field]:
    """The onnxruntime backend's execution accelerators and parameters for ``options.provider``."""
    fields: list[Field] = []
    if options.provider == "tensorrt":
        params = [("precision_mode", "FP16" if options.fp16 else "FP32"), ("max_workspace_size_bytes", "1073741824"),
                  ("trt_engine_cache_enable", "1")]
        trt = Message().add("name", "tensorrt")
        for key, value in params:
            trt.add("parameters", Message().add("key", key).add("value", value))
        fields.append(("optimization", Message().add("execution_accelerators", Message().add("gpu_execution_accelerator", [trt]))))
    elif options.provider == "openvino":
        ov = Message().add("name", "openvino")
        fields.append(("optimization", Message().add("execution_accelerators", Message().add("cpu_execution_accelerator", [ov]))))
    if options.provider in ("cuda", "tensorrt"):
        # onnxruntime backend parameter: 0 = EXHAUSTIVE cuDNN convolution algorithm search.
        fields.append(("parameters", _parameter("cudnn_conv_algo_search", "0")))
    return fields


def _parameter(key: str, value: str) -> Message:
    return Message().add("key", key).add("value", Message().add("string_value", value))


def build_config(model: onnx.ModelProto, name: str, options: TritonOptions, source: str = "model") -> Message:
    """Triton's ``ModelConfig`` for ``model`` as structured data (see :mod:`.triton_config`)."""
    inp, outputs = _io(model, source)
    for t in (inp, *outputs):
        check_tensor_name(t.name, source)
    max_batch, _ = batching(model, options, source)
    batched = max_batch > 0
    if batched and options.backend == "onnxruntime" and any(not o.batch_dynamic for o in outputs):
        raise OnnxModelError(f"{source}: the input batch is dynamic but an output's is not")
    config = Message().add("name", name)
    if options.backend == "python":
        config.add("backend", "python")
    else:
        config.add("platform", "onnxruntime_onnx")
    config.add("max_batch_size", max_batch)
    config.add("input", [_tensor_message(inp, batched, image=True)])
    served = outputs[:1] if options.backend == "python" else outputs  # Predictor answers with the logits
    config.add("output", [_tensor_message(o, batched, image=False) for o in served])
    if batched:
        config.add("dynamic_batching", Message().add("preferred_batch_size", _preferred_batches(max_batch))
                   .add("max_queue_delay_microseconds", options.queue_delay_us))
    gpu = options.provider in ("cuda", "tensorrt") and options.backend == "onnxruntime"
    config.add("instance_group", [Message().add("count", options.instances).add("kind", Enum("KIND_GPU" if gpu else "KIND_CPU"))])
    if options.backend == "python":
        config.add("parameters", _parameter("resnet_deploy_provider", options.provider))
        if options.threads is not None:
            config.add("parameters", _parameter("resnet_deploy_threads", str(options.threads)))
    else:
        config.fields.extend(_accelerators(options))
        if options.threads is not None:  # the onnxruntime backend's own session option
            config.add("parameters", _parameter("intra_op_thread_count", str(options.threads)))
    return config


def render_config(model: onnx.ModelProto, name: str, options: TritonOptions, source: str = "model") -> str:
    """config.pbtxt for ``model`` (text format of Triton's ``ModelConfig`` protobuf)."""
    return render(build_config(model, name, options, source))


def _validate(options: TritonOptions) -> None:
    if options.provider not in TRITON_PROVIDERS:
        raise InputError(f"unknown provider {options.provider!r}; expected one of {', '.join(TRITON_PROVIDERS)}")
    if options.backend not in TRITON_BACKENDS:
        raise InputError(f"unknown backend {options.backend!r}; expected one of {', '.join(TRITON_BACKENDS)}")
    for flag, value, low, high in (("--max-batch-size", options.max_batch_size, 0, MAX_BATCH_SIZE),
                                   ("--instances", options.instances, 1, MAX_INSTANCES),
                                   ("--queue-delay-us", options.queue_delay_us, 0, MAX_QUEUE_DELAY_US),
                                   ("--threads", options.threads, 1, MAX_THREADS)):
        if value is None and flag in ("--max-batch-size", "--threads"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InputError(f"{flag} must be an integer from {low} to {high}, received {value!r}")
    if options.fp16 and (options.provider != "tensorrt" or options.backend != "onnxruntime"):
        raise InputError("--fp16 applies to the tensorrt provider only (on the onnxruntime backend)")
    if options.name is not None and not _NAME.match(options.name):
        raise InputError(f"invalid model name {options.name!r}: use letters, digits, '_', '-' and '.'")


def profile_backend(profile: DeploymentProfile) -> tuple[str, str | None]:
    """The backend that serves ``profile`` as tuned, and why when it is not onnxruntime's.

    Triton's onnxruntime backend has its own session settings: it cannot run the OpenVINO
    runtime, precision hints, a batch compiled in, or CUDA graphs; a thread count it can.
    """
    session = profile.session
    reasons = [why for present, why in (
        (profile.backend != "onnxruntime", f"it runs on the {profile.backend}"),
        (bool(session.get("openvino_precision")), f"it uses the {session.get('openvino_precision')} precision hint"),
        (bool(session.get("static_batch")), f"it is compiled for a batch of {session.get('static_batch')}"),
        (bool(session.get("cuda_graph")), "it replays CUDA graphs"),
    ) if present]
    if not reasons:
        return "onnxruntime", None
    return "python", ("Triton's onnxruntime backend cannot express this profile (" + "; ".join(reasons)
                      + "): wrote a Python-backend entry whose model.py runs Predictor.from_profile")


def write_triton_repository(model_path: str | Path, repository: str | Path, options: TritonOptions) -> TritonEntry:
    """Write ``repository/NAME/{config.pbtxt, 1/model.onnx}``; refuse an existing entry unless ``force``."""
    _validate(options)
    model_path, repository = Path(model_path), Path(repository)
    name = options.name or re.sub(r"[^A-Za-z0-9_.\-]", "_", model_path.stem)
    if not _NAME.match(name):  # a file named `..onnx` has the stem `.`: the repository itself
        raise ResnetDeployError(f"the model name {name!r} (from {model_path.name}) is not a valid entry name: "
                                "use letters, digits, '_', '-' and '.', not first; pass --name")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ResnetDeployError(f"the model name {name[:40]}... is {len(name.encode())} bytes; an entry name may have at most "
                                f"{MAX_NAME_BYTES}" + ("" if options.name else "; pass --name"))
    # --force replaces the entry folder as a whole: the model must not be one of its files.
    check_distinct({}, {"MODEL": model_files(model_path)}, output_dirs={"the Triton entry": repository / name})
    tuned, model = _served_profile(model_path, options)
    if options.provider == "openvino" and is_image_input(model):
        raise InputError(f"{model_path} takes images with the preprocessing inside, whose antialiased Resize OpenVINO "
                         "does not compute as PIL does; serve it with --provider cpu (or cuda)")
    config = render_config(model, name, options, str(model_path))
    notes = [note] if (note := batching(model, options, str(model_path))[1]) else []
    foreign = sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node if not is_standard(n)})
    if foreign and options.provider in ("tensorrt", "openvino") and options.backend == "onnxruntime":  # a file of optimize --target cpu/cuda, say
        notes.append(f"{model_path.name} holds onnxruntime-specific ops ({', '.join(foreign)}) that {options.provider} cannot run: "
                     "Triton's onnxruntime backend runs those nodes on another provider; for all of the model on "
                     f"{options.provider}, give the portable file (resnet-deploy optimize --target portable)")
    if repository.exists() and not repository.is_dir():
        raise OutputPathError(f"repository path is not a folder: {repository}")
    try:
        repository.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create the repository {repository}: {exc.strerror or exc}") from exc
    target, old = repository / name, repository / f".{name}.old"
    try:
        if _restore(target, old):  # a --force cut short between its two renames: the old entry comes back first
            notes.append(f"restored {target} from {old.name}, left there by an interrupted --force")
    except OSError as exc:
        raise OutputPathError(f"could not restore {target} from {old}: {exc.strerror or exc}") from exc
    if target.exists() and not options.force:
        raise OutputPathError(f"{target} already exists; pass --force to replace it")
    _remove_stale_staging(repository, name)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=repository))
    except OSError as exc:
        raise OutputPathError(f"repository is not writable: {repository} ({exc.strerror or exc})") from exc
    try:
        (staging / STAGING_MARKER).write_text(str(os.getpid()))
        # mkdtemp makes 0700; the entry gets the mode a plain mkdir would (Triton may run as another user).
        mask = os.umask(0)
        os.umask(mask)
        staging.chmod(0o777 & ~mask)
        (staging / "1").mkdir()
        if options.backend == "python":
            _stage_python_model(staging / "1", model, model_path, tuned)
        else:
            save_onnx(model, staging / "1" / "model.onnx")
        (staging / "config.pbtxt").write_text(config, encoding="utf-8")
        (staging / STAGING_MARKER).unlink()
        _move_into_place(staging, target, old)
    except OSError as exc:
        raise OutputPathError(f"could not write {target}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):  # (if this fails too, the next run restores it)
            _restore(target, old)  # interrupted between the two renames of the fallback: the old entry stays
        _remove(staging)  # the unused new entry, or after a swap the old one (a folder, a file or a link)
    return TritonEntry(target, target / "config.pbtxt", target / "1" / "model.onnx", config, notes)


def _served_profile(model_path: Path, options: TritonOptions) -> tuple[DeploymentProfile | None, onnx.ModelProto]:
    """The profile an entry serves, checked (for this machine, for this model file), and the model:
    with a profile, the very bytes whose digest matched it (read once), so what is served is what
    was tuned."""
    if options.profile is None:
        return None, load_onnx(model_path)
    tuned = load_profile(options.profile, check_model=False)
    if tuned.model_path(options.profile).resolve() != model_path.resolve():
        raise InputError(f"{options.profile} is a profile for {tuned.model_path(options.profile)}, not {model_path}")
    return tuned, load_profile_model(tuned, options.profile)


def _stage_python_model(version: Path, model: onnx.ModelProto, model_path: Path, tuned: DeploymentProfile | None) -> None:
    """``1/model.py`` (Predictor in Triton's Python backend) and the model. With a profile: the
    model as verified against it, in one file, and the profile pointing at it with that file's
    digest; without one, the model's files copied byte for byte."""
    shutil.copyfile(PYTHON_MODEL, version / "model.py")
    if tuned is None:
        for source in model_files(model_path):
            shutil.copyfile(source, version / ("model.onnx" if source == model_path else source.name))
        return
    save_onnx(model, version / "model.onnx")
    save_profile(dataclasses.replace(tuned, model="model.onnx", model_sha256=model_sha256(version / "model.onnx")),
                 version / "profile.json")


def _remove_stale_staging(repository: Path, name: str) -> None:
    """Staging folders of this entry left by a run that was killed (SIGKILL runs no cleanup):
    ours by their marker, stale when the process that made them is gone."""
    for path in repository.glob(f".{glob.escape(name)}.????????"):
        marker = path / STAGING_MARKER
        try:
            pid = int(marker.read_text()) if path.is_dir() and not path.is_symlink() else None
        except (OSError, ValueError):
            continue
        if pid is not None and not _alive(pid):
            _remove(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``, glibc 2.28+);
    False where the system or the file system does not offer it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _remove(path: Path) -> None:
    """Remove what ``path`` is, whatever it is: the entry a swap set aside may be a folder, or a
    file or a symlink that stood where the entry goes (never followed)."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            path.unlink()


def _restore(target: Path, old: Path) -> bool:
    """Put back the entry a replacement renamed aside, when nothing took its place."""
    if os.path.lexists(target) or not old.is_dir():
        return False
    old.rename(target)
    return True


def _move_into_place(staging: Path, target: Path, old: Path) -> None:
    """``staging`` becomes ``target``; an existing ``target`` ends up at ``staging``: swapped in
    one step, or where that is not possible by way of ``old`` (three renames)."""
    if not os.path.lexists(target):
        staging.rename(target)
        return
    if os.path.lexists(old):
        _remove(old)  # a stale copy beside a complete entry (a removal cut short); a file or link too
    if _exchange(staging, target):
        return
    target.rename(old)
    staging.rename(target)
    old.rename(staging)  # removed from there by the caller: `old` only ever holds a complete entry
