"""TEST FIXTURE, not Triton's onnxruntime backend: a stand-in for it, written as a Python-based backend.

No pip or Debian package ships Triton's real onnxruntime backend (a C++ library built against
onnxruntime), so the end-to-end tests give the real Triton core this folder as
``BACKEND_DIR/onnxruntime/``. The core then loads an unchanged ``platform: "onnxruntime_onnx"``
entry written by ``resnet-deploy triton`` and hands it to this file, which does what the real
backend does with a strict config: it checks the config's input and output names, data types
and dims against the ONNX file (refusing the model, with the reason, on any mismatch), then runs
``1/model.onnx`` with onnxruntime on the CPU. What it cannot stand in for: the real backend's
execution accelerators (TensorRT, OpenVINO) and its GPU instances.
"""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_TYPES = {"tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(double)": "TYPE_FP64",
          "tensor(uint8)": "TYPE_UINT8", "tensor(int8)": "TYPE_INT8", "tensor(int32)": "TYPE_INT32",
          "tensor(int64)": "TYPE_INT64"}


def _check(kind: str, declared: list, actual: list, batched: bool) -> None:
    if [d["name"] for d in declared] != [a.name for a in actual]:
        raise pb_utils.TritonModelException(f"{kind} names {[d['name'] for d in declared]} do not match the model's "
                                            f"{[a.name for a in actual]}")
    for d, a in zip(declared, actual):
        if d["data_type"] != _TYPES.get(a.type):
            raise pb_utils.TritonModelException(f"{kind} {a.name!r}: data_type {d['data_type']} does not match the "
                                                f"model's {a.type}")
        shape = [s if isinstance(s, int) else -1 for s in a.shape]
        dims = [int(x) for x in d["dims"]]
        if (shape[1:] if batched else shape) != dims:
            raise pb_utils.TritonModelException(f"{kind} {a.name!r}: dims {dims} do not match the model's "
                                                f"shape {a.shape}")


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(
            config.get("parameters", {}).get("intra_op_thread_count", {}).get("string_value", "0"))
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        batched = int(config.get("max_batch_size", 0)) > 0
        _check("input", config["input"], self.session.get_inputs(), batched)
        _check("output", config["output"], self.session.get_outputs(), batched)
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests: list) -> list:
        arrays = [[pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs] for r in requests]
        feeds = {n: np.concatenate([a[i] for a in arrays]) for i, n in enumerate(self.inputs)}
        results = self.session.run(self.outputs, feeds)
        responses, start = [], 0
        for a in arrays:
            n = a[0].shape[0]
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(name, np.ascontiguousarray(r[start:start + n]))
                                                         for name, r in zip(self.outputs, results)]))
            start += n
        return responses
