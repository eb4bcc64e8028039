"""Triton Python-backend model written by ``resnet-deploy triton --backend python``.

It serves the entry's ``model.onnx`` through resnet-deploy's own :class:`Predictor`: exactly
as tuned when the entry holds a ``profile.json`` (``Predictor.from_profile``: the OpenVINO
runtime, precision hints, a batch compiled in, CUDA graphs), else on the provider named in the
config's ``resnet_deploy_provider`` parameter. The Python that runs Triton's stub must have
resnet-deploy installed. Requests that Triton's dynamic batcher hands over together run as one
batch.
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from resnet_deploy.runtime import Predictor


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        folder = Path(args["model_repository"]) / args["model_version"]
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        if (folder / "profile.json").is_file():
            self.predictor = Predictor.from_profile(folder / "profile.json")
        else:
            threads = params.get("resnet_deploy_threads")
            self.predictor = Predictor(folder / "model.onnx", provider=params.get("resnet_deploy_provider", "cpu"),
                                       threads=int(threads) if threads else None)
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]

    def execute(self, requests: list) -> list:
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        try:
            if len({a.shape[1:] for a in arrays}) == 1:  # one batch for all (images of one size)
                logits = self.predictor.run(np.concatenate(arrays))
            else:
                logits = np.concatenate([self.predictor.run(a) for a in arrays])
        except Exception as exc:  # every request of the batch gets the reason, in one line
            error = pb_utils.TritonError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses, start = [], 0
        for array in arrays:
            rows = logits[start : start + array.shape[0]]
            start += array.shape[0]
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, np.ascontiguousarray(rows))]))
        return responses

    def finalize(self) -> None:
        self.predictor.close()
