"""Fixtures of the CLI tests: real files, good and bad, made once per session.

torch is imported inside the fixtures, as in ``tests/conftest.py``.

``files`` holds every file the bad-input tables name (``{name}`` in a row); ``alias_sources`` the
folder the aliasing table copies for each of its rows.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

import resnet_deploy as rd

from .._cli_cases import EXTERNAL, run_cli


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory, resnet20_onnx: Path) -> dict[str, Path]:
    import torch

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
        b"\x80\x04cposix\nsystem\n" + pickle.dumps(f"touch {f['marker']}", protocol=0)[:-1].replace(b"\n", b"\n", 1)
        + b"\x85R."
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
    made = run_cli("quantize", resnet20_onnx, "-c", f["calib.npy"], "-o", f["int8.onnx"])
    assert made.returncode == 0, made.stderr
    f["existing"] = d / "existing.onnx"
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
        graph = helper.make_graph([node], name,
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
        f[name] = d / name
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), str(f[name]))
    # Inputs that are not float tensors: int64 pixels (cast in the graph), a sequence of tensors.
    head = [helper.make_node("ReduceMean", ["xf", "axes"], ["m"], keepdims=0),
            helper.make_node("Gemm", ["m", "w"], ["y"], transB=1)]
    weights = [onnx.numpy_helper.from_array(np.ones((10, 3), np.float32), "w"),
               onnx.numpy_helper.from_array(np.array([2, 3], np.int64), "axes")]
    for name, x, first in (
        ("int64.onnx", helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 3, 32, 32]),
         helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT)),
        ("seqin.onnx", helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32]),
         helper.make_node("ConcatFromSequence", ["x"], ["xf"], axis=0)),
    ):
        graph = helper.make_graph([first, *head], name, [x],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
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
    f["bomb.png"].write_bytes(b"\x89PNG\r\n\x1a\n"
                              + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
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
    rows = helper.make_graph([helper.make_node("Reshape", ["x", "rows"], ["r"]),
                              helper.make_node("ReduceMean", ["r"], ["y"], axes=[1])],
                             "runfail", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
                             initializer=[onnx.numpy_helper.from_array(np.array([7, -1], np.int64), "rows")])
    f["runfail.onnx"] = d / "runfail.onnx"
    onnx.save(helper.make_model(rows, opset_imports=[helper.make_opsetid("", 13)], ir_version=9),
              str(f["runfail.onnx"]))
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
    tanh = helper.make_node("FusedConv", ["x", "w4"], ["y"], domain="com.microsoft", activation="Tanh",
                            pads=[1, 1, 1, 1])
    graph = helper.make_graph([tanh], "tanh", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 32, 32])],
                              initializer=[onnx.numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, np.float32), "w4")])
    f["tanh.onnx"] = d / "tanh.onnx"
    onnx.save(helper.make_model(graph,
                                opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)],
                                ir_version=9), str(f["tanh.onnx"]))
    f["scalar.npy"] = d / "scalar.npy"
    np.save(f["scalar.npy"], np.float32(0.5))
    # Profiles for the real model that are not data of their schema, one field at a time.
    from resnet_deploy._machine import machine
    from resnet_deploy.profile.deployment import DeploymentProfile, model_sha256, save_profile

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
    f["deepprofile.json"].write_text(
        json.dumps(good).replace('"session": {', '"session": {"x": ' + "[" * 5000 + "]" * 5000 + ", ", 1))
    return f



@pytest.fixture(scope="session")
def alias_sources(tmp_path_factory: pytest.TempPathFactory, resnet20_onnx: Path) -> Path:
    import torch
    from onnx.external_data_helper import convert_model_to_external_data

    d = tmp_path_factory.mktemp("alias_sources")
    (d / "m.onnx").write_bytes(resnet20_onnx.read_bytes())
    torch.save(rd.create_model("resnet20").state_dict(), d / "t.pth")
    (d / "labels.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    np.save(d / "cal.npy", np.zeros((2, 3, 32, 32), np.float32))
    np.savez(d / "val.npz", x=np.zeros((2, 3, 32, 32), np.float32), y=np.zeros(2, np.int64))
    (d / "imgs").mkdir()
    Image.new("RGB", (40, 40), (120, 30, 200)).save(d / "imgs" / "a.png")
    model = onnx.load(str(resnet20_onnx))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="ext.onnx.data", size_threshold=0)
    onnx.save(model, str(d / "ext.onnx"))
    (d / "repo" / "m" / "1").mkdir(parents=True)
    (d / "repo" / "m" / "1" / "model.onnx").write_bytes(resnet20_onnx.read_bytes())
    (d / "repo" / "m" / "config.pbtxt").write_text('name: "m"\n')
    return d

