"""``optimize --features``: a classifier made elsewhere becomes a features file, as
``export --features`` writes one (the output ``embedding``, the same normalisation, the same
metadata), verified against the source graph's own classifier input."""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from .._errors import OnnxModelError, RuntimeBackendError
from ..graph.classifier_head import cut_classifier, expose_features, find_classifier_head
from ..graph.embedding import CLASS_KEYS, append_l2_normalize, features_metadata, is_features_file, l2_normalize
from ..graph.io import image_input, op_counts, read_metadata, write_metadata
from ..graph.verify import DEFAULT_RTOL, compare, fixed_inputs
from .pipeline import StageReport, Stopwatch, ort_outputs, verify_or_raise

__all__ = ["FeaturesRequest", "features_stage"]


@dataclass(frozen=True)
class FeaturesRequest:
    """Embeddings instead of classes, unit length with ``normalize``."""

    normalize: bool = False


def features_stage(
    model: onnx.ModelProto, request: FeaturesRequest, *, source: str = "model", rtol: float = DEFAULT_RTOL
) -> tuple[onnx.ModelProto, StageReport]:
    """``model`` cut at its classifier's input (normalised if asked), and the report of its check:
    the source graph runs with that input exposed as an extra output, and the features file must
    give the same vectors (L2-normalised in float64 for the reference when ``normalize``)."""
    watch = Stopwatch()
    metadata = read_metadata(model, source)
    if is_features_file(metadata):
        raise OnnxModelError(f"{source} is a features file already: its output is an embedding, not classes")
    head = find_classifier_head(model, source)
    features = cut_classifier(model, head, source)
    if request.normalize:
        append_l2_normalize(features)
    kept = [p for p in features.metadata_props if p.key not in CLASS_KEYS]
    del features.metadata_props[:]
    features.metadata_props.extend(kept)
    write_metadata(features, features_metadata(head.width, request.normalize))
    shape = image_input(model, source).batch_shape(2)
    x = fixed_inputs(shape, seed=3)
    try:
        reference = ort_outputs(expose_features(model, head), x)
    except RuntimeBackendError as exc:  # e.g. the pooled tensor is not the float32 [N, C] exposed
        raise OnnxModelError(f"onnxruntime cannot run {source} with its classifier's input {head.features!r} "
                             f"exposed as float32 [N, {head.width}]: {exc}") from exc
    if request.normalize:
        reference = l2_normalize(reference)
    parity = verify_or_raise([compare(ort_outputs(features, x), reference, rtol=rtol)], f"the features cut of {source}")
    note = (f"{head.op} classifier cut off at {head.features!r}: embedding [N, {head.width}]"
            f"{', L2-normalised' if request.normalize else ''}; vs the source's classifier input, input {list(shape)}: "
            f"{parity.describe()}")
    details = {"classifier": head.op, "cut_at": head.features, "embedding_dim": head.width,
               "normalized": request.normalize, "max_rel_error": parity.max_rel_error}
    return features, StageReport("features", watch(), dict(op_counts(features)), note, details)
