"""Verification of an image-input model against the float model fed by our PIL preprocessing.

The reference is what :class:`~resnet_deploy.runtime.Predictor` does with a float model today:
:class:`~resnet_deploy.preprocess.images.Preprocessing` (PIL) on the image, then the classifier. The
candidate is the image-input model on the same decoded uint8 pixels. Both run on onnxruntime's
CPU provider with graph optimizations off, so the graphs themselves are compared.

The photos are real: Grace Hopper's portrait shipped with the package, cropped, rescaled, rotated
and made grayscale (converted to RGB as ``Predictor`` converts it) into sizes and aspect ratios
from a 2:1 panorama strip to a 1:2 portrait, shorter sides below and above the resize size, and
odd sides whose crop offsets round half to even.

Per image it reports the preprocessed pixels' largest difference in grey levels (ONNX ``Resize``
computes in float32 where PIL uses 22-bit fixed-point weights, so a value that lies on a rounding
tie may round the other way: one level, two where a tie of the first pass feeds one of the second)
and the logits' error, ``max|a - b| / max|b|`` as in every other stage. It requires:

- logits within ``rtol`` (:data:`IMAGE_INPUT_RTOL` by default) on every image,
- the same top-1 class on every image,
- a top-5 overlap of at least :data:`MIN_TOP5_OVERLAP` of 5 on every image,
- the preprocessed pixels within :data:`MAX_PIXEL_LEVELS` grey levels of PIL's,
- a batch of two same-size images equal to the two run alone (to the same ``rtol``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import onnx
from PIL import Image

from .._errors import VerificationError
from ..image_input import IMAGE_INPUT_NAME, IMAGE_INPUT_OPSET, ImageInputSpec, add_image_input, split_image_input
from .pipeline import StageReport, Stopwatch
from ..preprocess.images import load_image, to_rgb
from ..preprocess.labels import sample_image_path
from ..graph.verify import compare

__all__ = ["IMAGE_INPUT_RTOL", "IMAGE_INPUT_RTOL_INT8", "MAX_PIXEL_LEVELS", "MIN_TOP5_OVERLAP", "ImageCheck",
           "ImageInputParity", "photo_variants", "verify_image_input", "image_input_stage"]

# Measured on the photos below (random-init ResNet-18 and ResNet-20): one grey level on up to 2.5 %
# of the pixels moves the logits by at most 2.1e-4 of the largest. Mistakes measured on the same
# model: no rounding between the passes 5.7e-3, the crop one row low 2.4e-2, no antialiasing 6.0e-2.
IMAGE_INPUT_RTOL = 2e-3
# Pixels: float32 against PIL's fixed-point weights may round a tie the other way, one level per
# pass (two where a tie of the first pass feeds one of the second). A crop one row off: 202 levels.
MAX_PIXEL_LEVELS = 2.0
# An INT8 classifier is discrete: one grey level can move an activation across a quantization step.
# Measured: ResNet-20 1.3e-2, ResNet-18 1.1e-2 (random init, calibrated on the photos below). Top-1
# and top-5 are held to the same bounds.
IMAGE_INPUT_RTOL_INT8 = 5e-2
MIN_TOP5_OVERLAP = 4


@dataclass(frozen=True)
class ImageCheck:
    """One photo: its size, the preprocessed pixels' error and the logits' error."""

    name: str
    width: int
    height: int
    max_pixel_error: float  # grey levels, after normalisation is undone
    pixels_differing: float  # fraction of preprocessed values off by half a level or more
    max_rel_error: float
    max_abs_error: float
    top1_equal: bool
    top5_overlap: int


@dataclass(frozen=True)
class ImageInputParity:
    images: tuple[ImageCheck, ...]
    batch_rel_error: float
    rtol: float

    @property
    def max_rel_error(self) -> float:
        return max(c.max_rel_error for c in self.images)

    @property
    def max_pixel_error(self) -> float:
        return max(c.max_pixel_error for c in self.images)

    @property
    def min_top5_overlap(self) -> int:
        return min(c.top5_overlap for c in self.images)

    @property
    def top1_agreement(self) -> float:
        return sum(c.top1_equal for c in self.images) / len(self.images)

    @property
    def ok(self) -> bool:
        return (self.max_rel_error <= self.rtol and self.batch_rel_error <= self.rtol and self.top1_agreement == 1.0
                and self.min_top5_overlap >= MIN_TOP5_OVERLAP and self.max_pixel_error <= MAX_PIXEL_LEVELS + 1e-3)

    def describe(self) -> str:
        worst = max(self.images, key=lambda c: c.max_rel_error)
        return (f"vs PIL preprocessing + the classifier on {len(self.images)} photos "
                f"({min(c.width for c in self.images)}-{max(c.width for c in self.images)} x "
                f"{min(c.height for c in self.images)}-{max(c.height for c in self.images)} px): "
                f"logits max rel error {self.max_rel_error:.2e} (tolerance {self.rtol:.0e}, worst {worst.name} "
                f"{worst.width}x{worst.height}), top-1 agreement {self.top1_agreement:.0%}, top-5 overlap >= "
                f"{self.min_top5_overlap}/5, pixels within {self.max_pixel_error:.2f} grey levels "
                f"(bound {MAX_PIXEL_LEVELS:.0f}); batch of 2 vs alone {self.batch_rel_error:.1e}")

    def to_dict(self) -> dict[str, Any]:
        return {"images": [asdict(c) for c in self.images], "batch_rel_error": self.batch_rel_error, "rtol": self.rtol,
                "max_rel_error": self.max_rel_error, "max_pixel_error": self.max_pixel_error,
                "min_top5_overlap": self.min_top5_overlap, "top1_agreement": self.top1_agreement}


def photo_variants() -> list[tuple[str, Image.Image]]:
    """Real-photo test images of many sizes and aspect ratios, made from the shipped portrait (512x600)."""
    photo = load_image(sample_image_path())
    return [
        ("portrait", photo),
        ("grayscale", to_rgb(photo.convert("L"))),  # as Predictor converts an L image
        ("rotated 90", photo.transpose(Image.Transpose.ROTATE_90)),
        ("2:1 crop", photo.crop((0, 100, 512, 356))),
        ("3.2:1 crop", photo.crop((0, 200, 512, 360))),
        ("1:2 crop", photo.crop((100, 0, 400, 600))),
        ("odd crop", photo.crop((7, 11, 340, 528))),
        ("downscaled", photo.resize((341, 400), Image.Resampling.LANCZOS)),
        ("upscaled", photo.resize((230, 270), Image.Resampling.LANCZOS)),
        ("large", photo.resize((1200, 1406), Image.Resampling.LANCZOS)),
        ("rotated 17", photo.rotate(17, Image.Resampling.BICUBIC, expand=True)),
    ]


def _session(model: onnx.ModelProto) -> Any:
    from ..runtime import SessionConfig, create_session

    session, _ = create_session(model.SerializeToString(), SessionConfig(provider="cpu", optimization="disable"))
    return session


def _with_pixels(model: onnx.ModelProto, pixels: str) -> onnx.ModelProto:
    """A copy that also outputs the classifier's input (the preprocessed pixels)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    value = next(v for v in probe.graph.value_info if v.name == pixels)
    probe.graph.output.append(value)
    return probe


def _top5_overlap(a: np.ndarray, b: np.ndarray) -> int:
    k = min(5, a.size)
    return len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k]))


def verify_image_input(
    model: onnx.ModelProto,
    *,
    photos: Sequence[tuple[str, Image.Image]] | None = None,
    rtol: float = IMAGE_INPUT_RTOL,
    source: str = "model",
) -> ImageInputParity:
    """Compare ``model`` (made by :func:`add_image_input`) on ``photos`` with its own float
    classifier fed by :class:`Preprocessing`; raises :class:`VerificationError` beyond the bounds."""
    core, spec = split_image_input(model, source=source)
    pixels = core.graph.input[0].name
    candidate, reference = _session(_with_pixels(model, pixels)), _session(core)
    std = np.asarray(spec.preprocessing.std, np.float64).reshape(3, 1, 1) * 255.0
    checks = []
    arrays = []
    for name, photo in photos if photos is not None else photo_variants():
        array = np.asarray(photo.convert("RGB"), dtype=np.uint8)
        arrays.append(array)
        expected = spec.preprocessing(photo)[None]
        logits_ref = reference.run(None, {pixels: expected})[0]
        outputs = candidate.run(None, {IMAGE_INPUT_NAME: array[None]})
        logits, got = outputs[0], outputs[-1]
        if got.shape != expected.shape:
            raise VerificationError(f"the image input of {source} makes {list(got.shape)} of the "
                                    f"{photo.width}x{photo.height} photo {name!r}; "
                                    f"PIL preprocessing makes {list(expected.shape)}")
        levels = np.abs(got[0].astype(np.float64) - expected[0]) * std
        parity = compare(logits, logits_ref, rtol=rtol)
        checks.append(ImageCheck(name, photo.width, photo.height, float(levels.max()), float(np.mean(levels >= 0.5)),
                                 parity.max_rel_error, parity.max_abs_error, parity.top1_agreement == 1.0,
                                 _top5_overlap(logits[0], logits_ref[0])))
    result = ImageInputParity(tuple(checks), _batch_error(candidate, arrays), rtol)
    if not result.ok:
        raise VerificationError(f"the image input of {source} disagrees with PIL preprocessing + its classifier: "
                                f"{result.describe()}")
    return result


def _batch_error(session: Any, arrays: list[np.ndarray]) -> float:
    """Two images of one size in one batch, against each run alone."""
    first = arrays[0]
    second = next((a for a in arrays[1:] if a.shape == first.shape), first[::-1].copy())
    together = session.run(None, {IMAGE_INPUT_NAME: np.stack([first, second])})[0]
    alone = np.concatenate([session.run(None, {IMAGE_INPUT_NAME: a[None]})[0] for a in (first, second)])
    return compare(together, alone).max_rel_error


def image_input_stage(
    model: onnx.ModelProto, spec: ImageInputSpec, *, source: str = "model", rtol: float | None = None
) -> tuple[onnx.ModelProto, StageReport]:
    """Prepend the preprocessing, check the graph and verify it on photos: one reported stage."""
    from ..graph.io import check_onnx, op_counts
    from ..graph.fp16 import is_quantized

    watch = Stopwatch()
    model, upgraded = _at_least_opset(model, source)
    out = add_image_input(model, spec, source=source)
    check_onnx(out, f"the image-input graph of {source}", full=True)
    if rtol is None:
        rtol = IMAGE_INPUT_RTOL_INT8 if is_quantized(model) else IMAGE_INPUT_RTOL
    parity = verify_image_input(out, rtol=rtol, source=source)
    pre = spec.preprocessing
    outputs = ", ".join(o.name for o in out.graph.output)
    note = (f"{upgraded}uint8 RGB [N, H, W, 3] in: resize shorter side to {pre.resize_size} (antialiased bilinear), "
            f"crop {pre.crop_size}, mean/std in the graph; outputs {outputs}; {parity.describe()}")
    return out, StageReport("image-input", watch(), dict(op_counts(out)), note, {"image_input": parity.to_dict()})


def _at_least_opset(model: onnx.ModelProto, source: str) -> tuple[onnx.ModelProto, str]:
    """``model`` in opset 18 at least (Resize's antialias), converted by onnx's version converter
    and verified against the original when it was older (a torch.onnx export with opset 17)."""
    from onnx import version_converter

    from .._errors import OnnxModelError, first_line
    from ..graph.io import check_onnx, image_input
    from .pipeline import ort_outputs, verify_or_raise
    from ..graph.verify import fixed_inputs

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset >= IMAGE_INPUT_OPSET:
        return model, ""
    try:
        upgraded = version_converter.convert_version(model, IMAGE_INPUT_OPSET)
    except Exception as exc:  # the converter raises bare RuntimeErrors on ops it cannot map
        raise OnnxModelError(f"{source} is opset {opset}; the image input needs {IMAGE_INPUT_OPSET} and onnx could not "
                             f"convert it ({first_line(exc, 160)}): re-export it with opset 18") from exc
    check_onnx(upgraded, f"the opset-{IMAGE_INPUT_OPSET} conversion of {source}", full=True)
    x = fixed_inputs(image_input(model, source).batch_shape(2), seed=0)
    parity = verify_or_raise([compare(ort_outputs(upgraded, x), ort_outputs(model, x))],
                             f"the opset-{IMAGE_INPUT_OPSET} conversion of {source}")
    return upgraded, (f"opset {opset} -> {IMAGE_INPUT_OPSET} "
                      f"(onnx's version converter; vs opset {opset}: {parity.describe()}); ")
