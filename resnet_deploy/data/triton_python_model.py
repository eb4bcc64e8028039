"""Triton Python-backend model written by ``resnet-deploy triton --backend python``.

It serves the entry's ``model.onnx`` through resnet-deploy's own :class:`Predictor`: exactly
as tuned when the entry holds a ``profile.json`` (``Predictor.from_profile``: the OpenVINO
runtime, precision hints, a batch compiled in, CUDA graphs), else on the provider named in the
config's ``resnet_deploy_provider`` parameter. The Python that runs Triton's stub must have
resnet-deploy installed. Requests that Triton's dynamic batcher hands over together run as one
batch; for an image-input model (its graph resizes the images as they are, so a run's memory
follows its pixels) in runs of one size and at most ``BATCH_PIXELS`` pixels, as ``predict`` runs
them (``run_within_budget``), each request's rows sent back to it.

Each request's shape and byte size are checked against the entry's bounds before its data is
touched: a request that claims ``[1, 4294967296, 4294967296, 3]`` with an empty body would make
numpy raise inside the stub (Triton's byte-size arithmetic wraps), and a stub that dies leaves
the model answering 500 to every later request. Such a request gets a 400-class error instead,
as does one that ``Predictor`` refuses (an image without pixels, one whose resize target is over
the bound, an empty batch): a refusal of the client's input is the client's error, never a 500.
"""

import gc
import json
import math
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from resnet_deploy import InputError
from resnet_deploy.runtime import Predictor
from resnet_deploy.runtime.raw_images import run_within_budget


# Defaults when the entry states none (resnet_deploy.serving.triton.options holds the same numbers).
DEFAULT_MAX_REQUEST_BYTES = 256 * 2**20
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # PIL's decompression-bomb bound, as predict's
LARGE_REQUEST_BYTES = 32 * 2**20  # after a request this large, memory goes back to the system


def _invalid(why: str) -> object:
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return pb_utils.TritonError(why) if code is None else pb_utils.TritonError(why, code)


def _line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _return_memory() -> None:
    """glibc keeps freed arenas; a stub that served one large request would hold its peak."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        folder = Path(args["model_repository"]) / args["model_version"]
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        if (folder / "profile.json").is_file():
            self.predictor = Predictor.from_profile(folder / "profile.json")
        else:
            threads = params.get("resnet_deploy_threads")
            self.predictor = Predictor(folder / "model" / "model.onnx",
                                       provider=params.get("resnet_deploy_provider", "cpu"),
                                       threads=int(threads) if threads else None)
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.max_request_bytes = int(params.get("resnet_deploy_max_request_bytes", DEFAULT_MAX_REQUEST_BYTES))
        self.max_image_pixels = int(params.get("resnet_deploy_max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS))
        self.image_input = config["input"][0]["data_type"] == "TYPE_UINT8"  # [N, H, W, 3] pixels of any size
        self.itemsize = {"TYPE_UINT8": 1, "TYPE_INT8": 1, "TYPE_FP16": 2, "TYPE_BF16": 2}.get(
            config["input"][0]["data_type"], 4)

    def _refusal(self, tensor: object) -> str | None:
        """Why a request's input is out of bounds, read from its shape alone (no data touched)."""
        shape = [int(d) for d in tensor.shape()]
        if any(d < 0 for d in shape):
            return f"input {self.input_name!r} has a negative dimension: {shape}"
        size = math.prod(shape) * self.itemsize
        if size > self.max_request_bytes:
            return (f"a request of shape {shape} holds {size:,} bytes; this entry takes at most "
                    f"{self.max_request_bytes:,} bytes per request")
        if self.image_input and len(shape) == 4 and shape[1] * shape[2] > self.max_image_pixels:
            return f"a {shape[2]}x{shape[1]} image has more than {self.max_image_pixels:,} pixels"
        return None

    def execute(self, requests: list) -> list:
        tensors = [pb_utils.get_input_tensor_by_name(r, self.input_name) for r in requests]
        refusals = [self._refusal(t) for t in tensors]
        if any(refusals):  # answer the refused requests alone; run the others as their own batch
            accepted = [i for i, why in enumerate(refusals) if why is None]
            answers = dict(zip(accepted, self.execute([requests[i] for i in accepted]) if accepted else []))
            return [answers[i] if why is None else pb_utils.InferenceResponse(output_tensors=[], error=_invalid(why))
                    for i, why in enumerate(refusals)]
        arrays = [t.as_numpy() for t in tensors]
        try:
            # An image input resizes in the graph: a run's memory follows its pixels, so runs are cut at BATCH_PIXELS.
            if self.image_input:
                large = sum(a.nbytes for a in arrays) > LARGE_REQUEST_BYTES  # its pieces give their memory back
                logits = run_within_budget(lambda batch: self.predictor.run(batch, release_memory=large), arrays)
            elif len({a.shape[1:] for a in arrays}) == 1:  # one batch for all
                logits = self.predictor.run(np.concatenate(arrays))
            else:
                logits = np.concatenate([self.predictor.run(a) for a in arrays])
        except InputError as exc:  # Predictor refused the client's input: a 400, to that request alone
            if len(requests) > 1:
                return [self.execute([r])[0] for r in requests]
            return [pb_utils.InferenceResponse(output_tensors=[], error=_invalid(_line(exc)))]
        except Exception as exc:  # every request of the batch gets the reason, in one line
            return [pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(_line(exc)))
                    for _ in requests]
        responses, start = [], 0
        for array in arrays:
            rows = logits[start : start + array.shape[0]]
            start += array.shape[0]
            responses.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor(self.output_name, np.ascontiguousarray(rows))]))
        if sum(a.nbytes for a in arrays) > LARGE_REQUEST_BYTES:
            del arrays, logits
            _return_memory()
        return responses

    def finalize(self) -> None:
        self.predictor.close()
