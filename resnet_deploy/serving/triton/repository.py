"""Writing one entry of a Triton model repository: ``REPO/NAME/config.pbtxt`` and ``REPO/NAME/1/``
(``model.onnx`` for the onnxruntime backend; ``model.py``, the model and its profile for the
Python backend). The entry is built beside its place and moved there when complete
(:func:`resnet_deploy._atomic.staged_folder`, as a bundle is): the path always holds a complete
entry, the old or the new one.
"""


import dataclasses
import os
import shutil
from pathlib import Path

import onnx

from ..._atomic import check_distinct, recover, staged_folder
from ..._errors import InputError, OutputPathError
from ...image_input import is_image_input
from ...graph.io import load_onnx, model_files, save_onnx
from ...graph.passes.unfuse_fused_conv import is_standard
from ...profile.deployment import DeploymentProfile, load_profile, load_profile_model, model_sha256, save_profile
from .config import batching, render_config
from .options import MAX_NAME_BYTES, NAME, TritonEntry, TritonOptions, entry_name, validate

__all__ = ["write_triton_repository", "profile_backend", "python_model_path", "PYTHON_MODEL"]

# The Python backend's model.py, copied into every such entry as 1/model.py.
PYTHON_MODEL = Path(__file__).parents[2] / "data" / "triton_python_model.py"


def profile_backend(profile: DeploymentProfile) -> tuple[str, str | None]:
    """The backend that serves ``profile`` as tuned, and why when it is not onnxruntime's.

    Triton's onnxruntime backend has its own session settings: it cannot run the OpenVINO
    runtime, precision hints, a batch compiled in, or CUDA graphs; a thread count it can.
    """
    session = profile.session
    reasons = [why for present, why in (
        (profile.backend != "onnxruntime", f"it runs on the {profile.backend}"),
        (bool(session.openvino_precision), f"it uses the {session.openvino_precision} precision hint"),
        (bool(session.static_batch), f"it is compiled for a batch of {session.static_batch}"),
        (session.streams > 1, f"it runs {session.streams} OpenVINO streams"),
        (session.cuda_graph, "it replays CUDA graphs"),
    ) if present]
    if not reasons:
        return "onnxruntime", None
    return "python", ("Triton's onnxruntime backend cannot express this profile (" + "; ".join(reasons)
                      + "): wrote a Python-backend entry whose model.py runs Predictor.from_profile")


def write_triton_repository(model_path: str | Path, repository: str | Path, options: TritonOptions) -> TritonEntry:
    """Write ``repository/NAME/{config.pbtxt, 1/model.onnx}``; refuse an existing entry unless ``force``."""
    validate(options)
    model_path, repository = Path(model_path), Path(repository)
    name = options.name or entry_name(model_path)
    if not NAME.match(name):  # a file named `..onnx` has the stem `.`: the repository itself
        raise InputError(f"the model name {name!r} (from {model_path.name}) is not a valid entry name: "
                                "use letters, digits, '_', '-' and '.', not first; pass --name")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise InputError(f"the model name {name[:40]}... is {len(name.encode())} bytes; an entry name may have at most "
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
    # (a file of optimize --target cpu/cuda, say)
    if foreign and options.provider in ("tensorrt", "openvino") and options.backend == "onnxruntime":
        notes.append(f"{model_path.name} holds onnxruntime-specific ops ({', '.join(foreign)}) "
                     f"that {options.provider} cannot run: Triton's onnxruntime backend runs those nodes on another "
                     f"provider; for all of the model on {options.provider}, give the portable file "
                     "(resnet-deploy optimize --target portable)")
    if repository.exists() and not repository.is_dir():
        raise OutputPathError(f"repository path is not a folder: {repository}")
    try:
        repository.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create the repository {repository}: {exc.strerror or exc}") from exc
    target = repository / name
    if recover(target):  # a --force cut short between its two renames: the old entry comes back first
        notes.append(f"restored {target} from .{name}.old, left there by an interrupted --force")
    with staged_folder(target, replace=options.force) as staged:
        (staged.path / "1").mkdir()
        if options.backend == "python":
            _stage_python_model(staged.path / "1", model, model_path, tuned)
        else:
            save_onnx(model, staged.path / "1" / "model.onnx")
        (staged.path / "config.pbtxt").write_text(config, encoding="utf-8")
    served = python_model_path(target / "1") if options.backend == "python" else target / "1" / "model.onnx"
    return TritonEntry(target, target / "config.pbtxt", served, config, notes)


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


# A Python-backend entry's version folder holds exactly these names, all ours: the model and its
# external data go in MODEL_FOLDER, which no generated file shares, so no data file named
# ``model.py`` or ``profile.json`` can take the place of our code or of the verified profile.
MODEL_FOLDER = "model"
MODEL_FILE = "model.onnx"


def python_model_path(version: Path) -> Path:
    """Where a Python-backend entry keeps its model, inside ``version`` (``1/``)."""
    return version / MODEL_FOLDER / MODEL_FILE


def _stage_python_model(version: Path, model: onnx.ModelProto, model_path: Path,
                        tuned: DeploymentProfile | None) -> None:
    """``1/model.py`` (Predictor in Triton's Python backend) and ``1/model/``. With a profile: the
    model as verified against it, in one file, and ``1/profile.json`` pointing at it with that
    file's digest; without one, the model's files copied byte for byte, external data keeping its
    relative layout (``data/w.bin`` stays ``model/data/w.bin``)."""
    folder = version / MODEL_FOLDER
    folder.mkdir()
    shutil.copyfile(PYTHON_MODEL, version / "model.py")
    if tuned is None:
        for source, name in _model_layout(model_path).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, folder / name)
        return
    save_onnx(model, folder / MODEL_FILE)
    save_profile(dataclasses.replace(tuned, model=f"{MODEL_FOLDER}/{MODEL_FILE}",
                                     model_sha256=model_sha256(folder / MODEL_FILE)), version / "profile.json")


def _model_layout(model_path: Path) -> dict[Path, str]:
    """Each file of the model and its name inside the entry's model folder: the model itself as
    ``model.onnx``, its external data at the relative location the model names. A data file
    whose location is the model's own name is refused: it would replace the model."""
    layout: dict[Path, str] = {model_path: MODEL_FILE}
    for source in model_files(model_path)[1:]:
        name = os.path.normpath(os.path.relpath(source, model_path.parent)).replace(os.sep, "/")
        if name == MODEL_FILE or name.startswith("../"):
            raise InputError(f"{model_path}: external data file {name!r} would take the place of the served model "
                             f"({MODEL_FOLDER}/{MODEL_FILE}); rename the data file")
        layout[source] = name
    return layout
