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
from ._errors import OnnxModelError, OutputPathError, ResnetDeployError
from .onnx_io import image_input, load_onnx, model_files, save_onnx
from .passes.unfuse_fused_conv import is_standard

__all__ = ["TritonOptions", "TritonEntry", "write_triton_repository", "render_config", "TRITON_PROVIDERS"]

TRITON_PROVIDERS = ("cpu", "cuda", "tensorrt", "openvino")
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
    if any(d is None for d in image.shape[1:]):
        raise OnnxModelError(f"{source}: input {image.name!r} has dynamic C/H/W dims {image.describe()}; only the batch may be dynamic")
    if image.shape[1] not in (1, 3):
        raise OnnxModelError(f"{source} must have one image input [N, C, H, W] with 1 or 3 channels; it has {image.describe()}")
    value = next(v for v in model.graph.input if v.name == image.name)
    return _tensor(value, source), [_tensor(o, source) for o in model.graph.output]


def _dims(t: _Tensor, batched: bool) -> str:
    return "[ " + ", ".join(str(d) for d in (t.dims[1:] if batched else t.dims)) + " ]"


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
    the user asked for batching explicitly.
    """
    inp, _ = _io(model, source)
    if inp.batch_dynamic:
        return (DEFAULT_MAX_BATCH_SIZE if options.max_batch_size is None else options.max_batch_size), None
    fixed = inp.dims[0]
    if options.max_batch_size:
        raise OnnxModelError(f"{source} has a fixed batch of {fixed}: Triton cannot batch it; "
                             "pass --max-batch-size 0 or re-export with a dynamic batch")
    if options.max_batch_size == 0:
        return 0, None
    return 0, (f"{source} has a fixed batch of {fixed}: wrote max_batch_size 0 (no dynamic batching; every request "
               f"is one tensor of {inp.dims}); re-export with a dynamic batch to let Triton batch")


def render_config(model: onnx.ModelProto, name: str, options: TritonOptions, source: str = "model") -> str:
    """config.pbtxt for ``model`` (text format of Triton's ``ModelConfig`` protobuf)."""
    inp, outputs = _io(model, source)
    max_batch, _ = batching(model, options, source)
    batched = max_batch > 0
    if batched and any(not o.batch_dynamic for o in outputs):
        raise OnnxModelError(f"{source}: the input batch is dynamic but an output's is not")
    lines = [f'name: "{name}"', 'platform: "onnxruntime_onnx"', f"max_batch_size: {max_batch}"]
    lines.append("input [\n  {\n" + f'    name: "{inp.name}"\n    data_type: {inp.data_type}\n'
                 + ("    format: FORMAT_NCHW\n" if inp.data_type in ("TYPE_FP32", "TYPE_FP16") else "")
                 + f"    dims: {_dims(inp, batched)}\n  }}\n]")
    outs = ",\n".join(f'  {{\n    name: "{o.name}"\n    data_type: {o.data_type}\n    dims: {_dims(o, batched)}\n  }}' for o in outputs)
    lines.append(f"output [\n{outs}\n]")
    if batched:
        preferred = ", ".join(map(str, _preferred_batches(max_batch)))
        lines.append(
            "dynamic_batching {\n"
            f"  preferred_batch_size: [ {preferred} ]\n"
            f"  max_queue_delay_microseconds: {options.queue_delay_us}\n}}"
        )
    kind = "KIND_GPU" if options.provider in ("cuda", "tensorrt") else "KIND_CPU"
    lines.append(f"instance_group [\n  {{\n    count: {options.instances}\n    kind: {kind}\n  }}\n]")
    if options.provider == "tensorrt":
        precision = "FP16" if options.fp16 else "FP32"
        lines.append(
            "optimization {\n  execution_accelerators {\n    gpu_execution_accelerator: [\n      {\n"
            '        name: "tensorrt"\n'
            f'        parameters {{ key: "precision_mode" value: "{precision}" }}\n'
            '        parameters { key: "max_workspace_size_bytes" value: "1073741824" }\n'
            '        parameters { key: "trt_engine_cache_enable" value: "1" }\n'
            "      }\n    ]\n  }\n}"
        )
    elif options.provider == "openvino":
        lines.append(
            "optimization {\n  execution_accelerators {\n    cpu_execution_accelerator: [\n"
            '      { name: "openvino" }\n    ]\n  }\n}'
        )
    if options.provider in ("cuda", "tensorrt"):
        # onnxruntime backend parameter: 0 = EXHAUSTIVE cuDNN convolution algorithm search.
        lines.append('parameters { key: "cudnn_conv_algo_search" value: { string_value: "0" } }')
    return "\n".join(lines) + "\n"


def _validate(options: TritonOptions) -> None:
    if options.provider not in TRITON_PROVIDERS:
        raise ResnetDeployError(f"unknown provider {options.provider!r}; expected one of {', '.join(TRITON_PROVIDERS)}")
    for flag, value, low, high in (("--max-batch-size", options.max_batch_size, 0, MAX_BATCH_SIZE),
                                   ("--instances", options.instances, 1, MAX_INSTANCES),
                                   ("--queue-delay-us", options.queue_delay_us, 0, MAX_QUEUE_DELAY_US)):
        if value is None and flag == "--max-batch-size":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ResnetDeployError(f"{flag} must be an integer from {low} to {high}, received {value!r}")
    if options.fp16 and options.provider != "tensorrt":
        raise ResnetDeployError("--fp16 applies to the tensorrt provider only")
    if options.name is not None and not _NAME.match(options.name):
        raise ResnetDeployError(f"invalid model name {options.name!r}: use letters, digits, '_', '-' and '.'")


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
    model = load_onnx(model_path)
    config = render_config(model, name, options, str(model_path))
    notes = [note] if (note := batching(model, options, str(model_path))[1]) else []
    foreign = sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node if not is_standard(n)})
    if foreign and options.provider in ("tensorrt", "openvino"):  # a file of optimize --target cpu/cuda, say
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
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=repository))
    except OSError as exc:
        raise OutputPathError(f"repository is not writable: {repository} ({exc.strerror or exc})") from exc
    try:
        # mkdtemp makes 0700; the entry gets the mode a plain mkdir would (Triton may run as another user).
        mask = os.umask(0)
        os.umask(mask)
        staging.chmod(0o777 & ~mask)
        (staging / "1").mkdir()
        save_onnx(model, staging / "1" / "model.onnx")
        (staging / "config.pbtxt").write_text(config, encoding="utf-8")
        _move_into_place(staging, target, old)
    except OSError as exc:
        raise OutputPathError(f"could not write {target}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):  # (if this fails too, the next run restores it)
            _restore(target, old)  # interrupted between the two renames of the fallback: the old entry stays
        _remove(staging)  # the unused new entry, or after a swap the old one (a folder, a file or a link)
    return TritonEntry(target, target / "config.pbtxt", target / "1" / "model.onnx", config, notes)


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
