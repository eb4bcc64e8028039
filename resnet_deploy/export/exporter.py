"""PyTorch -> verified ONNX: export, check, simplify, fuse, verify against eager, save.

The artifact has one input ``input`` ``[batch, 3, H, W]`` (dynamic batch unless asked for a
static one), one output ``logits``, standard ONNX ops only (opset 18 by default: the lowest
that torch.onnx's dynamo exporter emits, read by TensorRT 10, OpenVINO and onnxruntime >= 1.14;
onnx's version converter cannot take these graphs down to 17), no BatchNormalization or Identity
nodes, and ``metadata_props`` describing the model and its preprocessing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from .. import __version__
from .._atomic import check_writable
from .._errors import ResnetDeployError
from .._hashing import file_sha256
from .._registry import get_model_spec
from ..models import create_model
from ..graph.io import DEFAULT_OPSET, MIN_OPSET, op_counts, read_metadata, save_onnx, write_metadata
from ..image_input import ImageInputSpec
from .image_input import image_input_stage
from .pipeline import StageReport, Stopwatch, check_stage, fuse_stage, ort_outputs, simplify_stage, verify_or_raise
from ..graph.verify import compare, fixed_inputs
from ..preprocess.labels import read_labels_file  # noqa: F401 - the CLI's export reads labels from here
from ..graph.embedding import append_l2_normalize
from .features import FeatureExtractor, features_metadata
from .options import ExportOptions, export_preprocessing, validate
from .torch_export import EMBEDDING_NAME, OUTPUT_NAME, torch_export

if TYPE_CHECKING:  # export sits below quantize: precision.export_int8 composes them (export --int8)
    from ..precision.quantize import QuantizeResult

__all__ = ["ExportOptions", "ExportResult", "export_model", "torch_export", "export_preprocessing", "int8_path",
           "remove_if_ours", "read_labels_file", "DEFAULT_OPSET", "MIN_OPSET"]



@dataclass
class ExportResult:
    path: Path
    model_name: str
    weights: str
    stages: list[StageReport]
    max_rel_error: float
    top1_agreement: float
    verify_batches: list[int]
    size_bytes: int
    seconds: float
    metadata: dict[str, Any] = field(default_factory=dict)
    int8: QuantizeResult | None = None  # export --int8: set by precision.export_int8.export_with_int8

    @property
    def fusions(self) -> dict[str, int]:
        return next((s.details.get("fusions", {}) for s in self.stages if s.name == "fuse"), {})

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "model": self.model_name,
            "weights": self.weights,
            "stages": [s.to_dict() for s in self.stages],
            "fusions": self.fusions,
            "max_rel_error": self.max_rel_error,
            "top1_agreement": self.top1_agreement,
            "verify_batches": self.verify_batches,
            "size_bytes": self.size_bytes,
            "seconds": self.seconds,
            "metadata": self.metadata,
            "int8": self.int8.to_dict() if self.int8 else None,
        }


def _weights_description(weights: str | Path | None) -> str:
    if weights is None:
        return "random init (He et al. 2015, Kaiming normal)"
    digest = file_sha256(weights)[:16]
    return f"{Path(weights).name} (sha256 {digest})"


def export_model(
    options: ExportOptions,
    output: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
    force: bool = True,
) -> ExportResult:
    """Export, verify and save one model of the zoo; nothing is written unless every stage passes.

    With ``force=False`` an existing output (or INT8 file) is never replaced, even one created
    while the export ran: the save refuses it atomically and writes nothing (the CLI without
    ``--force``)."""
    say = progress or (lambda _msg: None)
    total = Stopwatch()
    output = check_writable(output)
    validate(options)
    spec = get_model_spec(options.name)
    image_size = options.image_size or spec.image_size
    num_classes = options.num_classes or spec.num_classes
    labels = list(options.labels) if options.labels is not None else None
    if labels is not None and len(labels) != num_classes:
        raise ResnetDeployError(f"{len(labels)} labels given for {num_classes} classes")

    preprocessing = export_preprocessing(options)
    metadata: dict[str, Any] = {
        "architecture": options.name,
        "family": spec.family,
        "depth": spec.depth,
        "residual": not spec.plain,
        **({} if options.features else {"num_classes": num_classes}),
        **preprocessing.to_metadata(),
        "toolkit": "resnet-deploy",
        "toolkit_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
    }
    if labels is not None:
        metadata["labels"] = labels

    say("building the model")
    model = create_model(options.name, num_classes=num_classes, weights=options.weights)
    if options.features:  # verified below against this very module: the net with fc = Identity
        model = FeatureExtractor(model, normalize=options.normalize).eval()
        metadata.update(features_metadata(model.dim, options.normalize))
    metadata["weights"] = _weights_description(options.weights)  # after create_model validated the file
    batches = [options.static_batch] if options.static_batch else [2, 3]
    inputs = [fixed_inputs((b, 3, image_size, image_size), seed=i) for i, b in enumerate(batches)]
    with torch.inference_mode():
        references = [model(torch.from_numpy(x)).numpy() for x in inputs]

    stages: list[StageReport] = []
    say("exporting with torch.onnx")
    watch = Stopwatch()
    example = torch.from_numpy(inputs[0])
    # A features file's normalisation is appended in ONNX, the one optimize --features appends too.
    proto = torch_export(model.net if options.features else model, example, opset=options.opset,
                         dynamic=options.static_batch is None,
                         output_name=EMBEDDING_NAME if options.features else OUTPUT_NAME)
    if options.normalize:
        append_l2_normalize(proto)
    bn_modules = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    left = op_counts(proto).get("BatchNormalization", 0)
    note = (f"torch.onnx (dynamo), opset {options.opset}; "
            f"BatchNorm2d modules {bn_modules} -> BatchNormalization nodes {left}")
    stages.append(StageReport("export", watch(), dict(op_counts(proto)), note, {"batchnorm_modules": bn_modules}))

    say("checking")
    stages.append(check_stage(proto, f"export of {options.name}"))
    say("simplifying with onnxsim")
    proto, report = simplify_stage(proto, inputs[0], ort_outputs(proto, inputs[0]), rtol=options.rtol)
    stages.append(report)
    say("fusing")
    stages.append(fuse_stage(proto, "portable"))

    say("verifying against eager PyTorch")
    watch = Stopwatch()
    data = proto.SerializeToString()
    comparisons = [compare(ort_outputs(data, x), ref, rtol=options.rtol) for x, ref in zip(inputs, references)]
    worst = verify_or_raise(comparisons, f"the ONNX export of {options.name}")
    stages.append(
        StageReport("verify", watch(), dict(op_counts(proto)),
                    f"vs eager PyTorch, batches {batches}: {worst.describe()}")
    )

    metadata["verified_max_rel_error"] = worst.max_rel_error
    write_metadata(proto, metadata)
    proto.producer_name, proto.producer_version = "resnet-deploy", __version__

    if options.image_input:
        say("putting the preprocessing in the graph and verifying it on photos")
        spec = ImageInputSpec(preprocessing, options.image_input_top_k)
        proto, report = image_input_stage(proto, spec, source=options.name)
        stages.append(report)
        metadata.update(read_metadata(proto))

    say(f"saving {output}")
    watch = Stopwatch()
    size = save_onnx(proto, output, replace=force)
    note = f"{size / 1e6:.1f} MB, atomic write"
    stages.append(StageReport("save", watch(), dict(op_counts(proto)), note))
    return ExportResult(
        path=output,
        model_name=options.name,
        weights=metadata["weights"],
        stages=stages,
        max_rel_error=worst.max_rel_error,
        top1_agreement=worst.top1_agreement,
        verify_batches=batches,
        size_bytes=size,
        seconds=total(),
        metadata=metadata,
    )


def remove_if_ours(path: Path, size: int) -> None:
    """Unlink ``path`` when it is still the file this run wrote (nothing else took its name)."""
    with contextlib.suppress(OSError):
        if path.stat().st_size == size:
            path.unlink()


def int8_path(output: str | Path) -> Path:
    """Where ``export --int8`` writes the quantized model: beside the fp32 one, ``<stem>_int8.onnx``."""
    output = Path(output)
    return output.with_name(f"{output.stem}_int8.onnx")
