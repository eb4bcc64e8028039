"""One benchmark measurement in its own process: ``python -m resnet_deploy.bench_worker SPEC.json``.

Each engine runs in a fresh process so that thread pools (PyTorch's, onnxruntime's, OpenVINO's)
never compete, and peak memory is the engine's own. The worker prints one JSON record.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from resnet_deploy._errors import first_line

Timed = Callable[[], None]


class TorchEngine:
    def __init__(self, spec: dict[str, Any]) -> None:
        import torch

        import resnet_deploy as rd

        self.torch = torch
        torch.set_num_threads(spec["threads"])
        self.variant = spec["variant"]
        self.device = "cuda" if spec["provider"] == "cuda" else "cpu"
        model = rd.create_model(spec["model"], weights=spec.get("weights"), num_classes=spec.get("num_classes"))
        model = model.to(self.device)
        self.channels_last = self.variant in ("channels_last", "bf16", "compile")
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = torch.compile(model) if self.variant == "compile" else model
        self.dtype = torch.bfloat16 if spec["precision"] == "bf16" else (torch.float16 if spec["precision"] == "fp16" else None)

    def _to_device(self, x: np.ndarray) -> Any:
        t = self.torch.from_numpy(x).to(self.device)
        return t.contiguous(memory_format=self.torch.channels_last) if self.channels_last else t

    def _forward(self, t: Any) -> Any:
        with self.torch.inference_mode():
            if self.dtype is not None:
                with self.torch.autocast(device_type=self.device, dtype=self.dtype):
                    out = self.model(t)
            else:
                out = self.model(t)
        if self.device == "cuda":
            self.torch.cuda.synchronize()  # time the work, not the launch
        return out

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self._forward(self._to_device(x)).float().cpu().numpy()

    def timed(self, x: np.ndarray) -> Timed:
        t = self._to_device(x)
        return lambda: self._forward(t)


class OrtEngine:
    def __init__(self, spec: dict[str, Any]) -> None:
        from resnet_deploy.runtime import SessionConfig, create_session

        cfg = SessionConfig(
            provider=spec["provider"],
            threads=spec["threads"],
            optimization=spec.get("optimization", "all"),
            fp16=spec["precision"] == "fp16" and spec["provider"] == "tensorrt",
            trt_cache_dir=spec.get("trt_cache_dir"),
            openvino_precision="BF16" if spec["precision"] == "bf16" else None,
        )
        self.session, self.provider = create_session(spec["model_path"], cfg)
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name
        self.gpu = self.provider in ("cuda", "tensorrt")

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output], {self.input: x})[0]

    def timed(self, x: np.ndarray) -> Timed:
        if not self.gpu:
            feeds = {self.input: x}

            def run_cpu() -> None:
                self.session.run([self.output], feeds)

            return run_cpu
        import onnxruntime as ort

        # IO binding: the input is on the device before timing; the output stays there.
        x_dev = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.input, x_dev)
        binding.bind_output(self.output, "cuda")

        def run() -> None:
            self.session.run_with_iobinding(binding)
            binding.synchronize_outputs()

        return run


def _accuracy(engine: TorchEngine | OrtEngine, spec: dict[str, Any]) -> float:
    ex, ey = np.load(spec["eval_x_path"]), np.load(spec["eval_y_path"])
    batch = spec["batch_size"]
    correct = 0
    for i in range(0, len(ex), batch):
        chunk = ex[i : i + batch]
        n = len(chunk)
        if n < batch:  # keep the engine's batch size (static shapes): pad, then drop the extra rows
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
        pred = engine.infer(np.ascontiguousarray(chunk)).argmax(1)[:n]
        correct += int(np.sum(pred == ey[i : i + n]))
    return correct / len(ex)


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    x = np.load(spec["input_path"])
    start = time.perf_counter()
    engine: TorchEngine | OrtEngine = TorchEngine(spec) if spec["framework"] == "pytorch" else OrtEngine(spec)
    created = time.perf_counter()
    output = engine.infer(x)
    first = time.perf_counter()
    np.save(spec["output_path"], output.astype(np.float32))
    run = engine.timed(x)
    for _ in range(spec["warmup"]):
        run()
    times: list[float] = []
    deadline = time.perf_counter() + spec["duration"] if spec.get("duration") else None
    while True:
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1000.0)
        if deadline is not None:
            if time.perf_counter() >= deadline and len(times) >= spec["min_iterations"]:
                break
        elif len(times) >= spec["iterations"]:
            break
    accuracy = _accuracy(engine, spec) if spec.get("eval_x_path") else None
    return {
        "latencies_ms": times,
        "session_create_ms": (created - start) * 1000.0,
        "first_run_ms": (first - created) * 1000.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "accuracy": accuracy,
        "worker_pid": os.getpid(),
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        record = measure(spec)
    except Exception as exc:  # reported to the parent as a failed record, never a traceback
        record = {"error": f"{type(exc).__name__}: {first_line(exc)}"}
    print("RESULT " + json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
