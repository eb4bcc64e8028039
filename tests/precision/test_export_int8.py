"""``export --int8`` in the library: export, then INT8 of the saved file, and nothing left behind
when INT8 fails (an fp32 file that ``force`` replaced stays replaced)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resnet_deploy.export.exporter import ExportOptions, int8_path
from resnet_deploy.graph.io import load_onnx, read_metadata
from resnet_deploy.precision.export_int8 import Int8Options, export_with_int8


@pytest.fixture(scope="module")
def calib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calib") / "calib.npy"
    np.save(path, np.random.default_rng(0).standard_normal((4, 3, 32, 32), dtype=np.float32))
    return path


def interrupt_at_calibration(message: str) -> None:
    if message.startswith("calibrating"):  # export is done, its file saved: INT8 has begun
        raise KeyboardInterrupt


def test_export_then_int8_beside_it(calib: Path, tmp_path: Path) -> None:
    out = tmp_path / "r20.onnx"
    result = export_with_int8(ExportOptions("resnet20"), out, Int8Options(calib, per_channel=False, target_cpu="any"))
    assert (result.path == out and result.int8 is not None
            and result.int8.path == int8_path(out) == tmp_path / "r20_int8.onnx")
    meta = read_metadata(load_onnx(result.int8.path))
    assert meta["precision"] == "int8" and meta["int8_kernels"] == "any" and "per-tensor" in meta["quantization"]


@pytest.mark.parametrize("force", [False, True])
def test_a_failed_int8_takes_the_new_fp32_file_back(calib: Path, tmp_path: Path, force: bool) -> None:
    out = tmp_path / "r20.onnx"
    with pytest.raises(KeyboardInterrupt):
        export_with_int8(ExportOptions("resnet20"), out, Int8Options(calib),
                         progress=interrupt_at_calibration, force=force)
    assert not list(tmp_path.iterdir())


def test_a_failed_int8_leaves_a_forced_replacement_in_place(calib: Path, tmp_path: Path) -> None:
    out = tmp_path / "r20.onnx"
    out.write_bytes(b"an older export")
    with pytest.raises(KeyboardInterrupt):
        export_with_int8(ExportOptions("resnet20"), out, Int8Options(calib),
                         progress=interrupt_at_calibration, force=True)
    assert read_metadata(load_onnx(out))["architecture"] == "resnet20"  # replaced, as --force asked
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r20.onnx"]


def test_bad_calibration_is_refused_before_the_export(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3, 24, 24), dtype=np.float32))
    from resnet_deploy import InputError

    with pytest.raises(InputError, match=r"\[N, 3, 32, 32\]"):
        export_with_int8(ExportOptions("resnet20"), tmp_path / "r20.onnx", Int8Options(bad))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npy"]
