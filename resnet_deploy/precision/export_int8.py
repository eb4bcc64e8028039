"""``export --int8``: export, then INT8 of the saved file, composed on the floor that sees both.

``precision`` sits above ``export`` (quantize reads what export writes), so the composition lives
here rather than in the command: the INT8 file's path and calibration data are checked before the
slow stages, and if quantization fails the run leaves nothing behind: the fp32 file export just
created is taken back (unless ``force`` replaced an existing one, which stays replaced).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .._atomic import check_writable
from ..export.exporter import ExportOptions, ExportResult, export_model, export_preprocessing, int8_path, remove_if_ours
from .calibration import DEFAULT_MAX_SAMPLES, load_samples
from .options import QuantizeOptions, check_options
from .quantize import quantize_file

__all__ = ["Int8Options", "export_with_int8"]


@dataclass(frozen=True)
class Int8Options:
    """The INT8 file written beside the fp32 one (``<stem>_int8.onnx``): plain INT8 options."""

    calibration: Path  # a folder of images or a .npy of preprocessed inputs
    method: str = "minmax"
    max_samples: int | None = DEFAULT_MAX_SAMPLES
    target_cpu: str = "auto"
    per_channel: bool = True

    def quantize_options(self) -> QuantizeOptions:
        return QuantizeOptions(method=self.method, per_channel=self.per_channel, target_cpu=self.target_cpu,
                               max_samples=self.max_samples)


def export_with_int8(
    options: ExportOptions,
    output: str | Path,
    int8: Int8Options | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    force: bool = False,
) -> ExportResult:
    """:func:`~resnet_deploy.export.exporter.export_model`, and with ``int8`` the saved file
    quantized beside it (``result.int8``, by :func:`~.quantize.quantize_file`)."""
    output = Path(output)
    if int8 is None:
        return export_model(options, output, progress=progress, force=force)
    target = int8_path(output)
    check_options(int8.quantize_options(), target)
    check_writable(target)
    preprocessing = export_preprocessing(options)
    size = preprocessing.crop_size  # the calibration data must fit the file about to be exported
    load_samples(int8.calibration, (None, 3, size, size), preprocessing.to_metadata(), max_samples=int8.max_samples)
    existed = output.exists()
    result = export_model(options, output, progress=progress, force=force)
    written = result.path.stat().st_size
    try:
        result.int8 = quantize_file(result.path, target, int8.calibration, method=int8.method,
                                    per_channel=int8.per_channel, target_cpu=int8.target_cpu,
                                    max_samples=int8.max_samples, progress=progress, force=force)
    except BaseException:
        if not existed:
            remove_if_ours(result.path, written)
        raise
    return result
