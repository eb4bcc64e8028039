"""Failure behaviour as a tested guarantee: every command under bad input, faults and load.

The bad-input table runs the real console entry point in a subprocess, so what is checked is
exactly what a user sees: the exit status, stderr, and the files left behind.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

import resnet_deploy as rd
from resnet_deploy.runtime import Predictor

from .test_preprocess_modes import MODE_FILES, _exif_photo, _mode_image

CLI = [sys.executable, "-m", "resnet_deploy_cli.main"]


def cli(*args: str | Path, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


# -- fixtures: real files, good and bad --------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, resnet20_onnx: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    f: dict[str, Path] = {"model": resnet20_onnx}
    state = rd.create_model("resnet20").state_dict()
    f["empty.pth"] = d / "empty.pth"
    f["empty.pth"].write_bytes(b"")
    torch.save(state, d / "full.pth")
    data = (d / "full.pth").read_bytes()
    f["truncated.pth"] = d / "truncated.pth"
    f["truncated.pth"].write_bytes(data[: len(data) // 3])
    f["corrupt.pth"] = d / "corrupt.pth"
    f["corrupt.pth"].write_bytes(os.urandom(4096))
    f["marker"] = d / "pwned"
    f["malicious.pth"] = d / "malicious.pth"
    f["malicious.pth"].write_bytes(
        b"\x80\x04cposix\nsystem\n" + pickle.dumps(f"touch {f['marker']}", protocol=0)[:-1].replace(b"\n", b"\n", 1) + b"\x85R."
    )
    wrong = dict(state)
    wrong["fc.weight"] = torch.zeros(3, 64)
    wrong["bogus"] = torch.zeros(1)
    torch.save(wrong, d / "wrong.pth")
    f["wrong.pth"] = d / "wrong.pth"
    onnx_bytes = resnet20_onnx.read_bytes()
    f["empty.onnx"] = d / "empty.onnx"
    f["empty.onnx"].write_bytes(b"")
    f["truncated.onnx"] = d / "truncated.onnx"
    f["truncated.onnx"].write_bytes(onnx_bytes[: len(onnx_bytes) // 2])
    f["corrupt.onnx"] = d / "corrupt.onnx"
    f["corrupt.onnx"].write_bytes(os.urandom(20000))
    # External data pointing outside the model's folder.
    model = onnx.load(str(resnet20_onnx))
    big = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    big.ClearField("raw_data")
    big.data_location = onnx.TensorProto.EXTERNAL
    big.external_data.add(key="location", value="../outside.bin")
    (d / "escape").mkdir()
    f["escape.onnx"] = d / "escape" / "escape.onnx"
    onnx.save(model, str(f["escape.onnx"]))
    f["notimage.jpg"] = d / "notimage.jpg"
    f["notimage.jpg"].write_text("plain text, not a JPEG")
    f["shape.npy"] = d / "shape.npy"
    np.save(f["shape.npy"], np.zeros((4, 3, 24, 32), np.float32))
    f["dtype.npy"] = d / "dtype.npy"
    np.save(f["dtype.npy"], np.zeros((4, 3, 32, 32), np.int64))
    f["huge.npy"] = d / "huge.npy"  # finite float32, but the first convolution overflows to Inf
    np.save(f["huge.npy"], np.full((2, 3, 32, 32), 3e38, np.float32))
    f["calib.npy"] = d / "calib.npy"
    np.save(f["calib.npy"], np.random.default_rng(0).standard_normal((8, 3, 32, 32), dtype=np.float32))
    f["emptydir"] = d / "emptydir"
    f["emptydir"].mkdir()
    f["int8.onnx"] = d / "int8.onnx"
    assert cli("quantize", resnet20_onnx, "-c", f["calib.npy"], "-o", f["int8.onnx"]).returncode == 0
    f["existing"] = d / "existing.onnx"
    from PIL import Image

    f["image.png"] = d / "image.png"
    Image.new("RGB", (48, 40), (200, 120, 30)).save(f["image.png"])
    # Models that compute NaN (NaN conv weights) and +Inf (an infinite classifier bias).
    for name, tensor_name, value in (("nan.onnx", "conv1.weight", np.nan), ("inf.onnx", "fc.bias", np.inf)):
        broken = onnx.load(str(resnet20_onnx))
        t = next(t for t in broken.graph.initializer if t.name == tensor_name)
        t.CopyFrom(onnx.numpy_helper.from_array(np.full_like(onnx.numpy_helper.to_array(t), value), t.name))
        f[name] = d / name
        onnx.save(broken, str(f[name]))
    f["wide.png"] = d / "wide.png"  # 100000x1: 3200000x32 after Resize(32), 102 M pixels
    Image.new("RGB", (100000, 1), (10, 20, 30)).save(f["wide.png"])
    f["imgdir"] = d / "imgdir"
    f["imgdir"].mkdir()
    for i in range(5):
        Image.new("RGB", (36 + i, 40), (40 * i, 100, 200 - 30 * i)).save(f["imgdir"] / f"img{i}.png")
    (f["imgdir"] / "notes.txt").write_text("not an image, skipped")
    # Metadata that is wrong, one key at a time.
    for name, key, value in (("labels3.onnx", "labels", '["a", "b", "c"]'), ("meanlen.onnx", "mean", "[0.5, 0.5]"),
                             ("zerostd.onnx", "std", "[0.2, 0, 0.2]"), ("strsize.onnx", "crop_size", "abc"),
                             ("negsize.onnx", "resize_size", "-5"), ("numclasses.onnx", "num_classes", "7"),
                             ("cropsize.onnx", "crop_size", "24"), ("smallresize.onnx", "resize_size", "16"),
                             ("order.onnx", "channel_order", "XYZ"),
                             ("deeplabels.onnx", "labels", "[" * 5000 + "]" * 5000),  # a RecursionError when decoded
                             ("deepmean.onnx", "mean", "[" * 40 + "0.5" + "]" * 40)):
        broken = onnx.load(str(resnet20_onnx))
        props = {p.key: p for p in broken.metadata_props}
        if key in props:
            props[key].value = value
        else:
            broken.metadata_props.add(key=key, value=value)
        f[name] = d / name
        onnx.save(broken, str(f[name]))
    # Graphs that are valid ONNX but not classifiers: a 4-D output, a scalar output.
    from onnx import TensorProto, helper

    for name, shape, node in (("out4d.onnx", ["N", 3, 32, 32], helper.make_node("Identity", ["x"], ["y"])),
                              ("scalar.onnx", [], helper.make_node("ReduceMean", ["x"], ["y"], keepdims=0))):
        graph = helper.make_graph([node], name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
        f[name] = d / name
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), str(f[name]))
    # Inputs that are not float tensors: int64 pixels (cast in the graph), a sequence of tensors.
    head = [helper.make_node("ReduceMean", ["xf", "axes"], ["m"], keepdims=0), helper.make_node("Gemm", ["m", "w"], ["y"], transB=1)]
    weights = [onnx.numpy_helper.from_array(np.ones((10, 3), np.float32), "w"),
               onnx.numpy_helper.from_array(np.array([2, 3], np.int64), "axes")]
    for name, x, first in (
        ("int64.onnx", helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 3, 32, 32]),
         helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT)),
        ("seqin.onnx", helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32]),
         helper.make_node("ConcatFromSequence", ["x"], ["xf"], axis=0)),
    ):
        graph = helper.make_graph([first, *head], name, [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
                                  initializer=weights)
        f[name] = d / name
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), str(f[name]))
    # External-data entries that are wrong one field at a time, beside a real data file.
    (d / "ext" / "sub").mkdir(parents=True)
    for name, (fields, _) in EXTERNAL.items():
        broken = onnx.load(str(resnet20_onnx))
        t = next(t for t in broken.graph.initializer if t.name == big.name)
        (d / "ext" / "weights.bin").write_bytes(t.raw_data)  # the same bytes each time
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        for key, value in fields.items():
            t.external_data.add(key=key, value=value)
        f[f"ext-{name}"] = d / "ext" / f"{name}.onnx"
        onnx.save(broken, str(f[f"ext-{name}"]))
    # External data of 3 GiB (a sparse file: no disk used), above the 2 GiB a model may hold.
    (d / "huge").mkdir()
    broken = onnx.load(str(resnet20_onnx))
    t = next(t for t in broken.graph.initializer if t.name == big.name)
    with open(d / "huge" / "weights.bin", "wb") as fh:
        fh.write(t.raw_data)
        fh.truncate(3 * 2**30)
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value="weights.bin")
    f["hugeext.onnx"] = d / "huge" / "hugeext.onnx"
    onnx.save(broken, str(f["hugeext.onnx"]))
    # Checkpoints whose tensors cannot be copied into a model's parameters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR tensor support is in beta"
        for name, convert in (("sparse.pth", torch.Tensor.to_sparse), ("sparsecsr.pth", torch.Tensor.to_sparse_csr),
                              ("quantized.pth", lambda t: torch.quantize_per_tensor(t, 0.1, 0, torch.qint8)),
                              ("meta.pth", lambda t: t.to("meta")), ("complex.pth", lambda t: t.to(torch.complex64))):
            odd = dict(state)
            odd["fc.weight"] = convert(state["fc.weight"])
            f[name] = d / name
            torch.save(odd, f[name])
    f["text.pth"] = d / "text.pth"  # a text file: no pickle, no code, yet it used to be "objects that would run code"
    f["text.pth"].write_text("not a checkpoint\n")
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    f["bomb.png"] = d / "bomb.png"  # a 20000x20000 header: readable, refused for its size (not "unreadable")
    f["bomb.png"].write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    f["cut.png"] = d / "cut.png"
    f["cut.png"].write_bytes(f["image.png"].read_bytes()[:60])
    f["labels3.txt"] = d / "labels3.txt"
    f["labels3.txt"].write_text("cat\ndog\nbird\n")
    f["strlabels.npz"] = d / "strlabels.npz"
    np.savez(f["strlabels.npz"], x=np.zeros((2, 3, 32, 32), np.float32), y=np.array(["cat", "dog"]))
    f["label10.npz"] = d / "label10.npz"  # resnet20 has classes 0..9: label 10 names none of them
    np.savez(f["label10.npz"], x=np.zeros((3, 3, 32, 32), np.float32), y=np.array([0, 10, 3]))
    f["big.npz"] = d / "big.npz"  # 10,001 samples, 120 KB compressed: one above the evaluation cap
    np.savez_compressed(f["big.npz"], x=np.zeros((10_001, 3, 32, 32), np.float32), y=np.zeros(10_001, np.int64))
    f["evaldir10"] = d / "evaldir10"  # class-index subfolders, one of them a class resnet20 does not have
    for label in ("3", "10"):
        (f["evaldir10"] / label).mkdir(parents=True)
        Image.new("RGB", (40, 40), (9, 99, 199)).save(f["evaldir10"] / label / "a.png")
    f["labelneg.npz"] = d / "labelneg.npz"
    np.savez(f["labelneg.npz"], x=np.zeros((2, 3, 32, 32), np.float32), y=np.array([-1, 2]))
    # A valid graph that fails when run: Reshape of [N, 3, 32, 32] into 7 rows (3072 values per image).
    rows = helper.make_graph([helper.make_node("Reshape", ["x", "rows"], ["r"]), helper.make_node("ReduceMean", ["r"], ["y"], axes=[1])],
                             "runfail", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
                             initializer=[onnx.numpy_helper.from_array(np.array([7, -1], np.int64), "rows")])
    f["runfail.onnx"] = d / "runfail.onnx"
    onnx.save(helper.make_model(rows, opset_imports=[helper.make_opsetid("", 13)], ir_version=9), str(f["runfail.onnx"]))
    trained = onnx.load(str(resnet20_onnx))  # as `export --weights` records a checkpoint
    next(p for p in trained.metadata_props if p.key == "weights").value = "r20.pth (sha256 0123456789abcdef)"
    f["trained.onnx"] = d / "trained.onnx"
    onnx.save(trained, str(f["trained.onnx"]))
    bare = onnx.load(str(resnet20_onnx))
    del bare.metadata_props[:]
    f["nometa.onnx"] = d / "nometa.onnx"
    onnx.save(bare, str(f["nometa.onnx"]))
    # A fixed batch of 8 (as `export --static-batch 8` makes), and a FusedConv no pass can unfuse.
    fixed = onnx.load(str(resnet20_onnx))
    for value in (fixed.graph.input[0], fixed.graph.output[0]):
        value.type.tensor_type.shape.dim[0].Clear()
        value.type.tensor_type.shape.dim[0].dim_value = 8
    f["static8.onnx"] = d / "static8.onnx"
    onnx.save(fixed, str(f["static8.onnx"]))
    tanh = helper.make_node("FusedConv", ["x", "w4"], ["y"], domain="com.microsoft", activation="Tanh", pads=[1, 1, 1, 1])
    graph = helper.make_graph([tanh], "tanh", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 32, 32])],
                              initializer=[onnx.numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, np.float32), "w4")])
    f["tanh.onnx"] = d / "tanh.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)],
                                ir_version=9), str(f["tanh.onnx"]))
    f["scalar.npy"] = d / "scalar.npy"
    np.save(f["scalar.npy"], np.float32(0.5))
    # Profiles for the real model that are not data of their schema, one field at a time.
    from resnet_deploy._machine import machine
    from resnet_deploy.profile import DeploymentProfile, model_sha256, save_profile

    save_profile(DeploymentProfile(str(resnet20_onnx), model_sha256(resnet20_onnx), "cpu", "onnxruntime", "fp32", 1,
                                   {"optimization": "all"}, {"p50_ms": 1.0}, machine()), d / "good-profile.json")
    good = json.loads((d / "good-profile.json").read_text())
    (d / "traces").mkdir()
    for name, patch in (("profiledir.json", {"session": {"profile_dir": str(d / "traces")}}),
                        ("staticbatch.json", {"session": {"static_batch": "1"}}),
                        ("sourcemodel.json", {"source_model": 5})):
        f[name] = d / name
        f[name].write_text(json.dumps({**good, **patch}))
    f["deepprofile.json"] = d / "deepprofile.json"
    f["deepprofile.json"].write_text(json.dumps(good).replace('"session": {', '"session": {"x": ' + "[" * 5000 + "]" * 5000 + ", ", 1))
    return f


@dataclass
class Case:
    id: str
    args: list[str]  # {name} is replaced by the fixture file of that name, {out} by the output path
    needles: list[str]
    writes: list[str] = field(default_factory=lambda: ["{out}"])


# External-data entries of one tensor, wrong one field at a time: the entries, and what the error says.
EXTERNAL = {
    "offset-text": ({"location": "weights.bin", "offset": "abc"}, ["'offset' must be a whole number of bytes", "'abc'"]),
    "offset-negative": ({"location": "weights.bin", "offset": "-5"}, ["'offset' must be a whole number of bytes", "'-5'"]),
    "length-text": ({"location": "weights.bin", "length": "1e3"}, ["'length' must be a whole number of bytes", "'1e3'"]),
    "length-negative": ({"location": "weights.bin", "length": "-1"}, ["'length' must be a whole number of bytes", "'-1'"]),
    "length-beyond": ({"location": "weights.bin", "length": "999999999"}, ["reads bytes 0-999999999 of 'weights.bin', which has"]),
    "offset-beyond": ({"location": "weights.bin", "offset": "999999999"}, ["'offset' 999999999 lies beyond the end of 'weights.bin'"]),
    "no-location": ({"offset": "0"}, ["names no 'location'"]),
    "location-folder": ({"location": "sub"}, ["location 'sub' is a folder, not a file"]),
}

TOO_MANY = str(4 * len(os.sched_getaffinity(0)) + 1)  # threads: one above the cap of 4x the cores

CASES = [
    Case("unknown-depth", ["export", "--depth", "19", "-o", "{out}"], ["no ResNet of depth 19", "valid depths"]),
    Case("unknown-model", ["export", "--model", "resnet19", "-o", "{out}"], ["unknown model 'resnet19'", "available"]),
    Case("missing-checkpoint", ["export", "--depth", "20", "-w", "{tmp}/nope.pth", "-o", "{out}"], ["checkpoint not found", "nope.pth"]),
    Case("empty-checkpoint", ["export", "--depth", "20", "-w", "{empty.pth}", "-o", "{out}"], ["empty", "empty.pth"]),
    Case("truncated-checkpoint", ["export", "--depth", "20", "-w", "{truncated.pth}", "-o", "{out}"], ["truncated.pth"]),
    Case("corrupt-checkpoint", ["export", "--depth", "20", "-w", "{corrupt.pth}", "-o", "{out}"], ["corrupt.pth"]),
    Case("malicious-checkpoint", ["export", "--depth", "20", "-w", "{malicious.pth}", "-o", "{out}"], ["refused", "malicious.pth"]),
    Case("wrong-keys-shapes", ["export", "--depth", "20", "-w", "{wrong.pth}", "-o", "{out}"], ["wrong.pth", "unexpected keys: bogus", "fc.weight (3, 64) vs (10, 64)"]),
    Case("no-output-folder", ["export", "--depth", "20", "-o", "{tmp}/missing/x.onnx"], ["does not exist", "missing"], []),
    Case("output-is-folder", ["export", "--depth", "20", "-o", "{tmp}"], ["is a folder"], []),
    Case("optimize-corrupt", ["optimize", "{corrupt.onnx}", "-o", "{out}"], ["not a valid ONNX file", "corrupt.onnx"]),
    Case("optimize-truncated", ["optimize", "{truncated.onnx}", "-o", "{out}"], ["truncated.onnx"]),
    Case("optimize-empty", ["optimize", "{empty.onnx}", "-o", "{out}"], ["empty", "empty.onnx"]),
    Case("optimize-escape", ["optimize", "{escape.onnx}", "-o", "{out}"], ["outside the model's folder", "escape.onnx"]),
    Case("optimize-no-folder", ["optimize", "{model}", "-o", "{tmp}/missing/x.onnx"], ["does not exist"], []),
    Case("optimize-bad-target", ["optimize", "{model}", "-o", "{out}", "--target", "tpu"], ["unknown target 'tpu'"]),
    Case("info-missing", ["info", "{tmp}/nope.onnx"], ["ONNX file not found", "nope.onnx"], []),
    Case("info-corrupt", ["info", "{corrupt.onnx}"], ["corrupt.onnx"], []),
    Case("info-escape", ["info", "{escape.onnx}"], ["outside the model's folder"], []),
    Case("predict-not-image", ["predict", "{model}", "{notimage.jpg}"], ["not a readable image", "notimage.jpg"], []),
    Case("predict-missing-image", ["predict", "{model}", "{tmp}/nope.png"], ["image not found", "nope.png"], []),
    Case("predict-corrupt-model", ["predict", "{corrupt.onnx}", "{notimage.jpg}"], ["corrupt.onnx"], []),
    Case("predict-provider", ["predict", "{model}", "{notimage.jpg}", "--provider", "cuda"], ["provider 'cuda' is not available", "available: "], []),
    Case("predict-nan-logits", ["predict", "{nan.onnx}", "{image.png}"], ["nan.onnx", "non-finite logits", "image.png"], []),
    Case("quantize-nan-weights", ["quantize", "{nan.onnx}", "-c", "{calib.npy}", "-o", "{out}"], ["nan.onnx", "weight 'conv1.weight' holds NaN"]),
    Case("quantize-inf-weights", ["quantize", "{inf.onnx}", "-c", "{calib.npy}", "-o", "{out}"], ["inf.onnx", "weight 'fc.bias' holds NaN or Inf"]),
    Case("predict-inf-logits-json", ["predict", "{inf.onnx}", "{image.png}", "{image.png}", "--json"], ["inf.onnx", "non-finite logits", "2 of 2"], []),
    # bounded resources: thread counts, batch, resize work, Triton's numbers
    # (one above the cap, so that a broken cap costs a few threads, not the 14,500 of --threads 99999)
    Case("predict-threads-absurd", ["predict", "{model}", "{image.png}", "--threads", TOO_MANY], ["threads must be at most", "cores", TOO_MANY], []),
    Case("bench-threads-absurd", ["bench", "{model}", "--threads", TOO_MANY], ["--threads", TOO_MANY], []),
    Case("tune-threads-absurd", ["tune", "{model}", "-o", "{out}", "--threads", TOO_MANY], ["--threads", TOO_MANY]),
    Case("bench-duration-nan", ["bench", "{model}", "--duration", "nan"], ["--duration must be a finite number", "nan"], []),
    Case("bench-duration-inf", ["bench", "{model}", "--duration", "inf"], ["--duration must be a finite number", "inf"], []),
    Case("tune-derived-name-too-long", ["tune", "{model}", "-o", "{tmp}/" + "p" * 235 + ".json"],
         ["the model tune may write beside --output ppppp", "longer than the 255 bytes", "shorten --output"], []),
    Case("tune-duration-nan", ["tune", "{model}", "-o", "{out}", "--duration", "nan"], ["--duration must be a finite number"]),
    Case("tune-accuracy-drop-nan", ["tune", "{model}", "-o", "{out}", "--max-accuracy-drop", "nan"], ["--max-accuracy-drop", "nan"]),
    Case("export-num-classes-huge", ["export", "--depth", "20", "--num-classes", str(10**12), "-o", "{out}"], ["--num-classes must be between 1 and 100,000", str(10**12)]),
    # no untyped exits: what used to end in "unexpected TypeError/AxisError/ValueError"
    Case("predict-4d-output", ["predict", "{out4d.onnx}", "{image.png}"], ["out4d.onnx", "[1, 3, 32, 32]", "logits [N, classes]"], []),
    Case("predict-scalar-output", ["predict", "{scalar.onnx}", "{image.png}"], ["scalar.onnx", "shape []", "logits [N, classes]"], []),
    # silent wrong results: labels that name no class scored 0% for every model, and were reported
    Case("bench-eval-label-too-big", ["bench", "{model}", "--eval-data", "{label10.npz}", "--iterations", "2", "--rounds", "1"],
         ["label10.npz", "class indices 0..9", "1 of 3 are outside", "e.g. 10"], []),
    Case("tune-eval-label-too-big", ["tune", "{model}", "-o", "{out}", "--eval-data", "{label10.npz}", "-c", "{calib.npy}"],
         ["label10.npz", "class indices 0..9"]),
    Case("bench-eval-folder-label-too-big", ["bench", "{model}", "--eval-data", "{evaldir10}", "--iterations", "2", "--rounds", "1"],
         ["evaldir10", "class indices 0..9", "e.g. 10"], []),
    Case("quantize-sensitivity-eval-too-big", ["quantize", "{model}", "-c", "{calib.npy}", "--sensitivity", "--eval-data", "{big.npz}"],
         ["big.npz holds 10,001 evaluation samples; at most 10,000", "pass a subset"], []),
    Case("quantize-eval-label-negative", ["quantize", "{model}", "-c", "{calib.npy}", "-o", "{out}", "--eval-data", "{labelneg.npz}",
                                          "--max-accuracy-drop", "1"], ["labelneg.npz", "class indices 0..9", "e.g. -1"]),
    Case("info-external-data-too-big", ["info", "{hugeext.onnx}"], ["hugeext.onnx holds 3.0 GiB with its external data",
                                                                    "at most 2 GiB"], []),
    Case("bench-too-many-files", ["bench", *["{model}"] * 17], ["17 files on 1 provider(s) make 17 engines", "at most 16",
                                                               "split them over several runs"], []),
    Case("bench-every-engine-failed", ["bench", "{runfail.onnx}", "--iterations", "2", "--rounds", "1", "--json", "{tmp}/b.json"],
         ["nothing was measured", "all 1 engine runs failed", "runfail b1", "no report was written"], []),
    Case("compare-huge-finite-data", ["compare", "{model}", "{int8.onnx}", "--data", "{huge.npy}"],
         ["reference resnet20.onnx on cpu computed non-finite values in block stem", "3e+38", "preprocessing"], []),
    Case("bench-string-eval-labels", ["bench", "{model}", "--eval-data", "{strlabels.npz}", "--iterations", "2", "--rounds", "1"], ["strlabels.npz", "integer class indices"], []),
    Case("predict-batch-size-0", ["predict", "{model}", "{image.png}", "--batch-size", "0"], ["batch_size must be at least 1"], []),
    Case("predict-resize-bomb", ["predict", "{model}", "{wide.png}"], ["wide.png", "100000x1", "3200000x32"], []),
    Case("predict-folder-without-images", ["predict", "{model}", "{emptydir}"], ["no images", "emptydir"], []),
    Case("triton-queue-delay-negative", ["triton", "{model}", "-r", "{tmp}/repo", "--queue-delay-us", "-5"], ["--queue-delay-us", "-5"], []),
    Case("triton-max-batch-huge", ["triton", "{model}", "-r", "{tmp}/repo", "--max-batch-size", str(10**10)], ["--max-batch-size", str(10**10)], []),
    Case("triton-instances-absurd", ["triton", "{model}", "-r", "{tmp}/repo", "--instances", "100000"], ["--instances", "100000"], []),
    # metadata validated once at load, naming the file and the key
    Case("meta-labels-count", ["predict", "{labels3.onnx}", "{image.png}"], ["labels3.onnx", "'labels' has 3 names for 10 classes"], []),
    Case("meta-mean-length", ["predict", "{meanlen.onnx}", "{image.png}"], ["meanlen.onnx", "'mean' must be 3 finite numbers"], []),
    Case("meta-zero-std", ["predict", "{zerostd.onnx}", "{image.png}"], ["zerostd.onnx", "'std' must be positive"], []),
    Case("meta-size-not-a-number", ["predict", "{strsize.onnx}", "{image.png}"], ["strsize.onnx", "'crop_size' must be a whole number", "abc"], []),
    Case("meta-size-negative", ["predict", "{negsize.onnx}", "{image.png}"], ["negsize.onnx", "'resize_size' must be between 1", "-5"], []),
    Case("meta-crop-vs-input", ["predict", "{cropsize.onnx}", "{image.png}"], ["cropsize.onnx", "'crop_size' 24 differs from the model's input height 32"], []),
    Case("meta-resize-below-crop", ["predict", "{smallresize.onnx}", "{image.png}"], ["smallresize.onnx", "'resize_size' 16 is smaller than the crop 32"], []),
    Case("meta-channel-order", ["predict", "{order.onnx}", "{image.png}"], ["order.onnx", "'channel_order' must be RGB or BGR", "XYZ"], []),
    Case("meta-num-classes", ["predict", "{numclasses.onnx}", "{image.png}"], ["numclasses.onnx", "'num_classes' is 7", "10 classes"], []),
    Case("predict-unknown-provider", ["predict", "{model}", "{notimage.jpg}", "--provider", "tpu"], ["unknown provider 'tpu'"], []),
    Case("quantize-shape", ["quantize", "{model}", "-c", "{shape.npy}", "-o", "{out}"], ["shape.npy", "[4, 3, 24, 32]", "[N, 3, 32, 32]"]),
    Case("quantize-dtype", ["quantize", "{model}", "-c", "{dtype.npy}", "-o", "{out}"], ["dtype.npy", "int64", "float32"]),
    Case("quantize-empty-folder", ["quantize", "{model}", "-c", "{emptydir}", "-o", "{out}"], ["no images", "emptydir"]),
    Case("quantize-already", ["quantize", "{int8.onnx}", "-c", "{calib.npy}", "-o", "{out}"], ["already quantized", "int8.onnx"]),
    Case("quantize-no-folder", ["quantize", "{model}", "-c", "{calib.npy}", "-o", "{tmp}/missing/q.onnx"], ["does not exist"], []),
    Case("quantize-corrupt", ["quantize", "{corrupt.onnx}", "-c", "{calib.npy}", "-o", "{out}"], ["corrupt.onnx"]),
    Case("export-int8-bad-calib", ["export", "--depth", "20", "--int8", "-c", "{shape.npy}", "-o", "{out}"], ["shape.npy", "[N, 3, 32, 32]"], ["{out}", "{tmp}/out_int8.onnx"]),
    Case("bench-batch-0", ["bench", "--model", "resnet20", "-b", "0"], ["batch sizes must be at least 1"], []),
    Case("bench-batch-neg", ["bench", "--model", "resnet20", "-b", "1,-4"], ["batch sizes must be at least 1, received -4"], []),
    Case("bench-provider", ["bench", "--model", "resnet20", "--providers", "tensorrt"], ["provider 'tensorrt' is not available"], []),
    Case("bench-precision", ["bench", "--model", "resnet20", "--precision", "fp8"], ["unknown precision 'fp8'"], []),
    Case("triton-corrupt", ["triton", "{corrupt.onnx}", "-r", "{tmp}/repo"], ["corrupt.onnx"], []),
    Case("triton-repo-is-file", ["triton", "{model}", "-r", "{tmp}/existing.onnx"], ["not a folder", "existing.onnx"], []),
    Case("triton-provider", ["triton", "{model}", "-r", "{tmp}/repo", "--provider", "tpu"], ["unknown provider 'tpu'"], []),
    Case("bench-unwritable", ["bench", "--model", "resnet20", "--json", "{tmp}/missing/b.json"], ["does not exist"], []),
    # targets and batches mean what they say: what cannot be honoured is refused, saying what to do
    Case("triton-fixed-batch-asked-to-batch", ["triton", "{static8.onnx}", "-r", "{tmp}/repo", "--max-batch-size", "32"],
         ["static8.onnx has a fixed batch of 8: Triton cannot batch it", "pass --max-batch-size 0 or re-export with a dynamic batch"], []),
    Case("optimize-portable-unfusable", ["optimize", "{tanh.onnx}", "-o", "{out}"],
         ["tanh.onnx holds onnxruntime-specific ops", "com.microsoft.FusedConv(Tanh) x1", "--target cpu"]),
    Case("quantize-unfusable", ["quantize", "{tanh.onnx}", "-c", "{calib.npy}", "-o", "{out}"],
         ["tanh.onnx holds onnxruntime-specific ops", "FusedConv(Tanh)", "standard ONNX"]),
    # no untyped exits, round two: inputs that are not float tensors, bad external-data entries,
    # checkpoints of tensors that are not plain dense ones (they ended in "unexpected
    # ValueError/RuntimeError", or, for int64 pixels, in an answer computed from truncated floats)
    Case("predict-int64-input", ["predict", "{int64.onnx}", "{image.png}"], ["int64.onnx", "input 'x' is int64", "needs a float input"], []),
    Case("bench-int64-input", ["bench", "{int64.onnx}", "--iterations", "2", "--rounds", "1"], ["int64.onnx", "input 'x' is int64"], []),
    Case("predict-sequence-input", ["predict", "{seqin.onnx}", "{image.png}"], ["seqin.onnx", "input 'x' is not a tensor"], []),
    Case("bench-sequence-input", ["bench", "{seqin.onnx}", "--iterations", "2", "--rounds", "1"], ["seqin.onnx", "input 'x' is not a tensor"], []),
    *[Case(f"{command}-external-{name}", [command, "{ext-" + name + "}", *extra], [f"{name}.onnx", *needles], writes)
      for name, (_, needles) in EXTERNAL.items()
      for command, extra, writes in (("info", [], []), ("predict", ["{image.png}"], []), ("optimize", ["-o", "{out}"], ["{out}"]))],
    *[Case(f"export-{name.removesuffix('.pth')}-checkpoint", ["export", "--depth", "20", "-w", "{" + name + "}", "-o", "{out}"],
           [name, "entry 'fc.weight' is a " + what])
      for name, what in (("sparse.pth", "sparse tensor (torch.sparse_coo"), ("sparsecsr.pth", "sparse tensor (torch.sparse_csr"),
                         ("quantized.pth", "quantized tensor"), ("meta.pth", "meta tensor"), ("complex.pth", "complex tensor"))],
    # found by a new user's first hour: misleading words, silently ignored flags, untyped exits
    Case("export-text-checkpoint", ["export", "--depth", "20", "-w", "{text.pth}", "-o", "{out}"],
         ["not a checkpoint", "text.pth", "neither torch.save's zip format nor a pickle"]),
    Case("export-model-and-depth", ["export", "--depth", "20", "--model", "resnet32", "-o", "{out}"],
         ["give --model or --depth/--plain, not both"]),
    Case("bench-model-and-depth", ["bench", "--depth", "20", "--model", "resnet32"], ["give --model or --depth/--plain, not both"], []),
    Case("quantize-sensitivity-with-output", ["quantize", "{model}", "-c", "{calib.npy}", "--sensitivity", "-o", "{out}"],
         ["--sensitivity writes no model; drop --output"]),
    Case("export-labels-count", ["export", "--depth", "20", "--labels", "{labels3.txt}", "-o", "{out}"],
         ["--labels", "labels3.txt", "has 3 names for 10 classes"]),
    Case("compare-samples-negative", ["compare", "{model}", "{model}", "--samples", "-2"], ["--samples must be between 1 and 1,000", "-2"], []),
    Case("compare-samples-zero", ["compare", "{model}", "{model}", "--samples", "0"], ["--samples must be between 1 and 1,000", "0"], []),
    Case("compare-samples-huge", ["compare", "{model}", "{model}", "--samples", "1000000"],
         ["--samples must be between 1 and 1,000, received 1000000", "compare in several runs"], []),
    Case("predict-decompression-bomb", ["predict", "{model}", "{bomb.png}"], ["refused", "bomb.png", "decompression bomb"], []),
    Case("predict-truncated-png", ["predict", "{model}", "{cut.png}"], ["not a readable image", "cut.png", "truncated"], []),
    # round three: a file we read is data, typed and bounded; deep nesting is refused, never a RecursionError
    Case("meta-labels-deep", ["predict", "{deeplabels.onnx}", "{image.png}"], ["deeplabels.onnx", "'labels' is JSON nested more than 32 levels"], []),
    Case("meta-mean-deep", ["info", "{deepmean.onnx}"], ["deepmean.onnx", "'mean' is JSON nested more than 32 levels"], []),
    Case("compare-data-scalar", ["compare", "{model}", "{model}", "--data", "{scalar.npy}"], ["scalar.npy", "has shape []"], []),
    Case("profile-session-profile-dir", ["predict", "--profile", "{profiledir.json}", "{image.png}"],
         ["profiledir.json", "field 'session.profile_dir' is not one a profile may set"], []),
    Case("profile-static-batch-string", ["predict", "--profile", "{staticbatch.json}", "{image.png}"],
         ["staticbatch.json", "field 'session.static_batch' must be an integer from 1 to 4096"], []),
    Case("profile-source-model-number", ["predict", "--profile", "{sourcemodel.json}", "{image.png}"],
         ["sourcemodel.json", "field 'source_model' must be a string, received 5"], []),
    Case("profile-deep-json", ["predict", "--profile", "{deepprofile.json}", "{image.png}"], ["deepprofile.json", "nests more than 4 levels"], []),
]


def _fill(text: str, files: dict[str, Path], tmp: Path, out: Path) -> str:
    text = text.replace("{out}", str(out)).replace("{tmp}", str(tmp))
    for key, path in files.items():
        text = text.replace("{" + key + "}", str(path))
    return text


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(case: Case, files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.onnx"
    existing = tmp_path / "existing.onnx"
    existing.write_bytes(b"previous content")
    args = [_fill(a, files, tmp_path, out) for a in case.args]
    if "{out}" in case.args and case.id != "no-output-folder":
        # Point the output at an existing file, with --force (without it, the command refuses
        # before any work): it must survive the failure untouched.
        args = [str(existing) if a == str(out) else a for a in args] + ["--force"]
    result = cli(*args)
    print(" ".join(args[:3]), "->", result.returncode, result.stderr.strip())
    assert result.returncode not in (0,) and result.returncode > 0  # a negative code is a crash by signal
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and len(errors[0]) < 400, result.stderr
    for needle in case.needles:
        assert needle in errors[0], errors[0]
    assert existing.read_bytes() == b"previous content"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["existing.onnx"], left  # nothing partial, no temporary file
    assert not files["marker"].exists()  # the malicious pickle never ran


# -- class: no output may alias an input, by any path ---------------------------------------------

@dataclass
class Alias:
    id: str
    args: list[str]  # paths relative to the case's folder, which is also the working directory
    needles: list[str]
    link: tuple[str, str, str] | None = None  # ("hard" | "sym", link name, target)


ALIASES = [
    Alias("optimize-report-is-model", ["optimize", "m.onnx", "-o", "out.onnx", "--report", "m.onnx"], ["--report m.onnx", "MODEL m.onnx"]),
    Alias("optimize-output-via-dotdot", ["optimize", "m.onnx", "-o", "imgs/../m.onnx"], ["--output imgs/../m.onnx", "MODEL m.onnx"]),
    Alias("optimize-output-is-external-data", ["optimize", "ext.onnx", "-o", "ext.onnx.data"], ["ext.onnx.data", "external data"]),
    Alias("optimize-report-is-output", ["optimize", "m.onnx", "-o", "out.onnx", "--report", "./out.onnx"], ["--report out.onnx", "--output out.onnx", "same file"]),
    Alias("export-output-is-weights", ["export", "--depth", "20", "-w", "t.pth", "-o", "t.pth"], ["--output t.pth", "--weights t.pth"]),
    Alias("export-output-hardlink-weights", ["export", "--depth", "20", "-w", "t.pth", "-o", "hard.pth"], ["hard.pth", "--weights t.pth"], ("hard", "hard.pth", "t.pth")),
    Alias("export-output-symlink-labels", ["export", "--depth", "20", "--labels", "labels.txt", "-o", "sym.onnx"], ["sym.onnx", "--labels labels.txt"], ("sym", "sym.onnx", "labels.txt")),
    Alias("export-default-output-is-weights", ["export", "--depth", "20", "-w", "resnet20.onnx"], ["--output resnet20.onnx", "--weights resnet20.onnx"], ("hard", "resnet20.onnx", "t.pth")),
    Alias("export-int8-file-is-calibration", ["export", "--depth", "20", "--int8", "-c", "cal.npy", "-o", "e.onnx"], ["e_int8.onnx", "--calibration cal.npy"], ("hard", "e_int8.onnx", "cal.npy")),
    Alias("export-report-is-labels", ["export", "--depth", "20", "--labels", "labels.txt", "--report", "labels.txt", "-o", "e.onnx"], ["--report labels.txt", "--labels labels.txt"]),
    Alias("quantize-output-is-calibration", ["quantize", "m.onnx", "-c", "cal.npy", "-o", "cal.npy"], ["--output cal.npy", "--calibration cal.npy"]),
    Alias("quantize-report-in-calibration-folder", ["quantize", "m.onnx", "-c", "imgs", "-o", "q.onnx", "--report", "imgs/a.png"], ["--report imgs/a.png", "inside the input --calibration imgs"]),
    Alias("bench-json-is-model", ["bench", "m.onnx", "--json", "m.onnx"], ["--json m.onnx", "MODEL m.onnx"]),
    Alias("bench-csv-is-eval-data", ["bench", "m.onnx", "--eval-data", "val.npz", "--csv", "val.npz"], ["--csv val.npz", "--eval-data val.npz"]),
    Alias("bench-plot-is-second-model", ["bench", "m.onnx", "ext.onnx", "--plot", "ext.onnx"], ["--plot ext.onnx", "MODEL ext.onnx"]),
    Alias("tune-output-is-eval-data", ["tune", "m.onnx", "-o", "val.npz", "--eval-data", "val.npz"], ["--output val.npz", "--eval-data val.npz"]),
    Alias("tune-model-file-beside-profile", ["tune", "p.ort-int8.onnx", "-o", "p.json"], ["the profile's model", "p.ort-int8.onnx", "the input MODEL"], ("hard", "p.ort-int8.onnx", "m.onnx")),
    Alias("triton-model-inside-entry", ["triton", "repo/m/1/model.onnx", "-r", "repo", "--name", "m", "--force"], ["repo/m/1/model.onnx", "Triton entry"]),
]


@pytest.fixture(scope="module")
def alias_sources(tmp_path_factory: pytest.TempPathFactory, resnet20_onnx: Path) -> Path:
    from onnx.external_data_helper import convert_model_to_external_data

    d = tmp_path_factory.mktemp("alias_sources")
    (d / "m.onnx").write_bytes(resnet20_onnx.read_bytes())
    torch.save(rd.create_model("resnet20").state_dict(), d / "t.pth")
    (d / "labels.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    np.save(d / "cal.npy", np.zeros((2, 3, 32, 32), np.float32))
    np.savez(d / "val.npz", x=np.zeros((2, 3, 32, 32), np.float32), y=np.zeros(2, np.int64))
    (d / "imgs").mkdir()
    from PIL import Image

    Image.new("RGB", (40, 40), (120, 30, 200)).save(d / "imgs" / "a.png")
    model = onnx.load(str(resnet20_onnx))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="ext.onnx.data", size_threshold=0)
    onnx.save(model, str(d / "ext.onnx"))
    (d / "repo" / "m" / "1").mkdir(parents=True)
    (d / "repo" / "m" / "1" / "model.onnx").write_bytes(resnet20_onnx.read_bytes())
    (d / "repo" / "m" / "config.pbtxt").write_text('name: "m"\n')
    return d


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (b"->" + os.readlink(p).encode() if p.is_symlink() else p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()}


@pytest.mark.parametrize("case", ALIASES, ids=[c.id for c in ALIASES])
def test_output_never_aliases_an_input(case: Alias, alias_sources: Path, tmp_path: Path) -> None:
    """Every output of every command against every input, by any path: refused before any work,
    one line naming both, every file (and nothing else) left as it was."""
    import shutil

    work = tmp_path / "w"
    shutil.copytree(alias_sources, work, symlinks=True)
    if case.link:
        kind, name, target = case.link
        if kind == "hard":
            os.link(work / target, work / name)
        else:
            (work / name).symlink_to(target)
    before = _snapshot(work)
    result = cli(*case.args, cwd=work, timeout=120)
    print(" ".join(case.args), "->", result.returncode, result.stderr.strip())
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and len(errors[0]) < 400, result.stderr
    for needle in case.needles:
        assert needle in errors[0], errors[0]
    assert _snapshot(work) == before


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: bare {constant}")

    return json.loads(text, parse_constant=refuse)


def test_predictor_refuses_non_finite_logits(files: dict[str, Path]) -> None:
    with Predictor(files["nan.onnx"], provider="cpu") as p:
        with pytest.raises(rd.NonFiniteOutputError, match=r"nan\.onnx computed non-finite logits .* 1 of 1 images"):
            p.predict(files["image.png"])
        assert np.isnan(p.run(p.preprocess([files["image.png"]]))).all()  # run() hands back what the model computed


def test_json_output_is_strict(files: dict[str, Path], tmp_path: Path) -> None:
    """No bare NaN/Infinity in any JSON we print or write: a value that is not finite is null."""
    model = onnx.load(str(files["model"]))
    entry = next(p for p in model.metadata_props if p.key == "verified_max_rel_error")
    entry.value = "NaN"
    nan_meta = tmp_path / "nan_meta.onnx"
    onnx.save(model, str(nan_meta))
    result = cli("info", nan_meta, "--json")
    assert result.returncode == 0, result.stderr
    assert _strict_json(result.stdout)["metadata"]["verified_max_rel_error"] is None
    # bench: an engine whose output is NaN has a NaN error against the baseline.
    out = tmp_path / "b.json"
    result = cli("bench", files["model"], files["nan.onnx"], "--iterations", "2", "--rounds", "1", "--warmup", "0", "--json", out)
    assert result.returncode == 0, result.stderr
    records = _strict_json(out.read_text())["results"]
    assert [r["max_rel_error"] for r in records if r["engine"] == "nan"] == [None], records


def test_predict_streams_batches_and_reads_folders(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """predict DIR takes the folder's images (sorted, non-images skipped) and runs them
    --batch-size at a time: memory bounded by the batch, answers identical to one big batch."""
    listed = sorted(files["imgdir"].glob("*.png"))
    streamed = cli("predict", files["model"], files["imgdir"], "--batch-size", "2", "--json", "--provider", "cpu")
    whole = cli("predict", files["model"], *listed, "--batch-size", "16", "--json", "--provider", "cpu")
    assert streamed.returncode == 0 and whole.returncode == 0, streamed.stderr + whole.stderr
    got, expected = _strict_json(streamed.stdout), _strict_json(whole.stdout)
    assert [e["image"] for e in got] == [str(p) for p in listed]
    assert {e["provider"] for e in got} == {"cpu"}  # the JSON says which provider ran
    assert [[(k["index"], round(k["score"], 5)) for k in e["top_k"]] for e in got] == \
        [[(k["index"], round(k["score"], 5)) for k in e["top_k"]] for e in expected]
    with Predictor(files["model"], provider="cpu") as p:
        shapes: list[int] = []
        run = p.run
        monkeypatch.setattr(p, "run", lambda batch: (shapes.append(len(batch)), run(batch))[1])
        assert len(p.predict(listed, batch_size=2)) == 5
    assert shapes == [2, 2, 1]


def test_sixteen_bit_images_match_their_8_bit_twins(files: dict[str, Path], tmp_path: Path) -> None:
    """A 16-bit PNG gives the tensor of its 8-bit twin within 1/255 (PIL alone clips it to white);
    a float image is refused by name."""
    from PIL import Image

    from resnet_deploy.preprocess import Preprocessing

    gray8 = (np.arange(48 * 40).reshape(40, 48) * 7 % 256).astype(np.uint8)
    Image.fromarray(gray8).save(tmp_path / "g8.png")
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    pre = Preprocessing(36, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert np.abs(pre(tmp_path / "g16.png") - pre(tmp_path / "g8.png")).max() <= 1 / 255
    Image.fromarray(gray8.astype(np.float32) / 255).save(tmp_path / "f.tiff")
    result = cli("predict", files["model"], tmp_path / "f.tiff")
    assert result.returncode == 1 and "f.tiff" in result.stderr and "mode F" in result.stderr, result.stderr


def test_model_without_metadata_says_so(files: dict[str, Path]) -> None:
    result = cli("predict", files["nometa.onnx"], files["image.png"], "--provider", "cpu")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "nometa.onnx has no preprocessing metadata" in warnings[0], result.stderr
    assert "warning:" not in cli("predict", files["trained.onnx"], files["image.png"], "--provider", "cpu").stderr


def test_random_weights_are_named_before_any_answer(files: dict[str, Path]) -> None:
    """`export` without --weights records the seeded random initialisation; predict and Predictor
    say so once, instead of answering "paintbrush 0.0011" as if it meant something."""
    result = cli("predict", files["model"], files["image.png"], "--provider", "cpu", "--json")
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert result.returncode == 0 and len(lines) == 1, result.stderr
    assert "resnet20.onnx holds the seeded random initialisation, not trained weights" in lines[0] and "--weights" in lines[0]
    with pytest.warns(UserWarning, match="resnet20.onnx holds the seeded random initialisation"):
        Predictor(files["model"], provider="cpu").close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Predictor(files["trained.onnx"], provider="cpu").close()


@pytest.mark.parametrize("args", [("info", "{model}", "--json"), ("predict", "{trained.onnx}", "{image.png}", "--json"),
                                  ("info", "{model}")], ids=["info-json", "predict-json", "info-tables"])
def test_closed_stdout_is_quiet(files: dict[str, Path], tmp_path: Path, args: tuple[str, ...]) -> None:
    """`resnet-deploy info --json | head -1`: the reader went away; exit 0 without a word."""
    argv = [_fill(a, files, tmp_path, tmp_path / "out") for a in args]
    proc = subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # no reader: every write to stdout is EPIPE
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 0 and err == "", err


def test_unknown_model_gets_no_note_before_its_error(tmp_path: Path) -> None:
    result = cli("export", "--model", "resnet999", "-o", tmp_path / "x.onnx")
    assert result.returncode == 1 and "unknown model 'resnet999'" in result.stderr, result.stderr
    assert "randomly initialised" not in result.stdout + result.stderr


def test_dash_h_is_help_everywhere() -> None:
    from resnet_deploy_cli.main import app

    commands = [c.name for c in app.registered_commands]
    assert len(commands) >= 8
    for argv in ([], *([c] for c in commands)):
        result = cli(*argv, "-h")
        assert result.returncode == 0 and "Usage: " in result.stdout, (argv, result.stderr)
        # A flag takes no value: `--plain <bool>` read as if `--plain true` were the usage.
        # (typer's own --help keeps its label.)
        if argv:
            shown = [line for line in result.stdout.splitlines() if "<bool>" in line and "--help" not in line]
            assert not shown, (argv, shown)


# -- class: outputs are regular files in writable places ------------------------------------------

@pytest.mark.parametrize("kind", ["fifo-output", "fifo-report", "dev-null", "name-too-long"])
def test_output_must_be_a_regular_file_with_a_valid_name(kind: str, files: dict[str, Path], tmp_path: Path) -> None:
    """A FIFO or a device is refused, not replaced; a name over the limit is refused before any work."""
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    out = tmp_path / "out.onnx"
    args, needles = {
        "fifo-output": (["optimize", files["model"], "-o", fifo], ["not a regular file", "pipe.onnx"]),
        "fifo-report": (["optimize", files["model"], "-o", out, "--report", fifo], ["not a regular file", "pipe.onnx"]),
        "dev-null": (["export", "--depth", "20", "-o", "/dev/null"], ["not a regular file", "/dev/null"]),
        "name-too-long": (["optimize", files["model"], "-o", tmp_path / ("n" * 300 + ".onnx")], ["longer than the 255 bytes"]),
    }[kind]
    result = cli(*args)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(n in errors[0] for n in needles), result.stderr
    assert "... loading" not in result.stderr and "... simplifying" not in result.stderr  # refused before any work
    assert fifo.is_fifo() and Path("/dev/null").is_char_device()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.onnx"]


def test_longest_valid_name_is_writable(files: dict[str, Path], tmp_path: Path) -> None:
    """A 250-byte name is valid; the temporary name beside it must not push it over 255."""
    out = tmp_path / ("n" * 245 + ".onnx")
    result = cli("optimize", files["model"], "-o", out, "--report", tmp_path / ("r" * 245 + ".json"))
    assert result.returncode == 0, result.stderr
    assert sorted(len(p.name) for p in tmp_path.iterdir()) == [250, 250]


def test_triton_entry_names_and_modes(files: dict[str, Path], tmp_path: Path) -> None:
    """A file named `..onnx` would make the entry the repository itself: refused. An entry gets
    the user's umask, not mkdtemp's 0700 (Triton often runs as another user)."""
    dots = tmp_path / "..onnx"
    dots.write_bytes(files["model"].read_bytes())
    repo = tmp_path / "repo"
    result = cli("triton", dots, "-r", repo)
    assert result.returncode == 1 and "not a valid entry name" in result.stderr and "..onnx" in result.stderr, result.stderr
    assert not repo.exists()
    result = subprocess.run(["sh", "-c", 'umask 022 && exec "$@"', "sh", *CLI, "triton", str(files["model"]), "-r", str(repo),
                             "--name", "m"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert oct((repo / "m").stat().st_mode & 0o777) == oct(0o755)
    assert oct((repo / "m" / "1" / "model.onnx").stat().st_mode & 0o777) == oct(0o644)


@pytest.mark.parametrize("seed", range(6))
def test_bit_flipped_onnx_never_crashes(tmp_path: Path, resnet20_onnx: Path, sample_image: Path, seed: int) -> None:
    """Random bit flips: either a clean error or a clean (different) answer, never a crash."""
    data = bytearray(resnet20_onnx.read_bytes())
    rng = np.random.default_rng(seed)
    # Flip bits in the first 4 kB (graph structure, names, shapes) and a few anywhere.
    positions = list(rng.integers(0, min(4096, len(data)), 6)) + list(rng.integers(0, len(data), 4))
    for pos in positions:
        data[pos] ^= 1 << int(rng.integers(0, 8))
    bad = tmp_path / "flipped.onnx"
    bad.write_bytes(bytes(data))
    for args in (("info", bad), ("predict", bad, sample_image, "--provider", "cpu")):
        result = cli(*args)
        print(seed, args[0], result.returncode, result.stderr.strip()[:200])
        assert result.returncode in (0, 1), result.stderr
        assert "Traceback" not in result.stderr
        if result.returncode:
            assert "flipped.onnx" in result.stderr


def test_external_data_outside_is_never_read(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from onnx import external_data_helper

    from resnet_deploy.onnx_io import load_onnx

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("external data was read")

    monkeypatch.setattr(external_data_helper, "load_external_data_for_model", forbidden)
    with pytest.raises(rd.OnnxModelError, match="outside the model's folder"):
        load_onnx(files["escape.onnx"])


@pytest.mark.parametrize(("name", "dtype"), [("int64.onnx", "int64"), ("seqin.onnx", "sequence(float32)")])
def test_info_describes_inputs_that_are_not_float_tensors(files: dict[str, Path], name: str, dtype: str) -> None:
    """info describes what predict refuses: an int64 or a sequence input is a type to show (a
    sequence used to end in "unexpected KeyError: 0")."""
    result = cli("info", files[name], "--json")
    assert result.returncode == 0, result.stderr
    assert _strict_json(result.stdout)["inputs"] == [{"name": "x", "dtype": dtype, "shape": ["N", 3, 32, 32]}]


def test_image_modes_through_predict(files: dict[str, Path], tmp_path: Path) -> None:
    """The real entry point: every mode's file, and a sideways phone photo, gets the answer of
    its twin, a PNG of the expected RGB pixels; nothing on stderr but the provider line."""
    pairs = []
    for name in MODE_FILES:
        source, expected = _mode_image(name, tmp_path)
        Image.fromarray(expected).save(tmp_path / f"twin-{name}.png")
        pairs.append((name, f"twin-{name}.png"))
    decoded = _exif_photo(tmp_path / "photo.jpg", 6)
    Image.fromarray(np.ascontiguousarray(np.rot90(decoded, -1))).save(tmp_path / "upright.png")
    Image.fromarray(decoded).save(tmp_path / "sideways.png")  # the stored pixels, EXIF ignored
    pairs.append(("photo.jpg", "upright.png"))
    names = [n for pair in pairs for n in pair] + ["sideways.png"]
    result = cli("predict", files["trained.onnx"], *(tmp_path / n for n in names), "--json", "--provider", "cpu", "--top-k", "10")
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    scores = {Path(e["image"]).name: {k["index"]: k["score"] for k in e["top_k"]} for e in _strict_json(result.stdout)}
    for name, twin in pairs:
        assert scores[name] == pytest.approx(scores[twin], rel=1e-5, abs=1e-7), name
    assert scores["sideways.png"] != pytest.approx(scores["upright.png"], rel=1e-5, abs=1e-7)


# -- class: targets, fixed batches and Triton entries mean what they say -------------------------------

def _notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note:")]


def test_cpu_target_file_composes_with_portable_and_quantize(files: dict[str, Path], tmp_path: Path) -> None:
    """optimize --target cpu, then optimize (portable): standard ONNX only, same outputs; then
    quantize the cpu file: it works from the portable graph and says so in one note line."""
    from resnet_deploy.onnx_io import load_onnx
    from resnet_deploy.pipeline import ort_outputs
    from resnet_deploy.verify import compare

    cpu, portable, int8 = tmp_path / "cpu.onnx", tmp_path / "portable.onnx", tmp_path / "int8.onnx"
    assert cli("optimize", files["model"], "-o", cpu, "--target", "cpu").returncode == 0
    result = cli("optimize", cpu, "-o", portable)
    assert result.returncode == 0, result.stderr
    model = load_onnx(portable)
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"} and "unfuse_fused_conv x9" in result.stdout
    x = np.random.default_rng(5).standard_normal((3, 3, 32, 32), dtype=np.float32)
    parity = compare(ort_outputs(model, x), ort_outputs(load_onnx(cpu), x), rtol=1e-4)
    assert parity.ok, parity.describe()
    result = cli("quantize", cpu, "-c", files["calib.npy"], "-o", int8)
    assert result.returncode == 0 and int8.is_file(), result.stderr
    notes = _notes(result.stderr)
    assert len(notes) == 1 and "cpu.onnx holds onnxruntime's FusedConv" in notes[0] and "portable graph" in notes[0], result.stderr
    assert "top-1 agreement with fp32 100.0%" in " ".join(result.stdout.split())
    # --sensitivity (and --max-accuracy-drop) start from the same portable graph
    result = cli("quantize", cpu, "-c", files["calib.npy"], "--sensitivity")
    assert result.returncode == 0 and "portable graph" in result.stderr and "all blocks" in result.stdout, result.stderr


def test_fixed_batch_model_in_triton_and_quantize(files: dict[str, Path], tmp_path: Path) -> None:
    """A fixed batch of 8: Triton's default batching becomes max_batch_size 0 with one note line
    (an explicit --max-batch-size is refused: the bad-input table); quantize calibrates in
    batches of 8 and the INT8 file keeps the fixed batch."""
    repo = tmp_path / "repo"
    result = cli("triton", files["static8.onnx"], "-r", repo)
    assert result.returncode == 0, result.stderr
    notes = _notes(result.stderr)
    assert len(notes) == 1 and "static8.onnx has a fixed batch of 8: wrote max_batch_size 0" in notes[0], result.stderr
    assert "max_batch_size: 0" in (repo / "static8" / "config.pbtxt").read_text()
    result = cli("triton", files["static8.onnx"], "-r", repo, "--name", "zero", "--max-batch-size", "0")
    assert result.returncode == 0 and _notes(result.stderr) == [], result.stderr
    int8 = tmp_path / "int8.onnx"
    result = cli("quantize", files["static8.onnx"], "-c", files["calib.npy"], "-o", int8)
    assert result.returncode == 0, result.stderr
    assert onnx.load(str(int8)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 8
    # the accuracy-aware path evaluates in batches of 8 too (13 samples: the last batch filled up)
    eval_data = tmp_path / "eval.npz"
    np.savez(eval_data, x=np.random.default_rng(2).standard_normal((13, 3, 32, 32), dtype=np.float32), y=np.arange(13) % 10)
    result = cli("quantize", files["static8.onnx"], "-c", files["calib.npy"], "-o", tmp_path / "aware.onnx", "--eval-data", eval_data,
                 "--max-accuracy-drop", "100")
    assert result.returncode == 0 and "kept in float: no block" in " ".join(result.stdout.split()), result.stderr


# -- faults --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose calibration takes long enough to be interrupted half-way (exported once)."""
    big = tmp_path_factory.mktemp("r50") / "r50.onnx"
    assert cli("export", "--depth", "50", "-o", big).returncode == 0
    return big


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("command", ["export", "quantize"])
def test_interrupt_leaves_nothing_behind(tmp_path: Path, request: pytest.FixtureRequest, sig: signal.Signals, command: str) -> None:
    out = tmp_path / "out.onnx"
    if command == "export":
        args = ["export", "--depth", "50", "-o", str(out)]
    else:
        args = ["quantize", str(request.getfixturevalue("resnet50_file")), "-c", str(tmp_path / "cal.npy"), "-o", str(out)]
        np.save(tmp_path / "cal.npy", np.random.default_rng(0).standard_normal((16, 3, 224, 224), dtype=np.float32))
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Interrupt once the work is under way (the progress line of a middle stage).
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline:
        line = proc.stderr.readline()
        seen += line
        if ("simplifying" in line) if command == "export" else ("calibrating" in line):
            break
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    print(seen + err)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file() and p.suffix != ".npy") == []
