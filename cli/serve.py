"""``resnet-deploy serve``: Triton's own server on this machine, serving one model until Ctrl-C."""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from resnet_deploy.triton import TritonOptions, write_triton_repository
from resnet_deploy.triton.server import TritonServer, TritonServerError, find_tritonserver

from ._errors import CLIError, handle_errors
from .triton import profile_target
from ._output import console, err_console


@handle_errors
def serve(
    model: Annotated[Optional[Path], typer.Argument(help="An ONNX file (or none, with --profile).", show_default=False)] = None,
    profile: Annotated[Optional[Path], typer.Option("--profile", help="A deployment profile from resnet-deploy tune: served as tuned.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Model name on the server (default: the file's stem).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind; 0.0.0.0 exposes the server to the network.")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option("--http-port", help="HTTP/REST port.")] = 8000,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="gRPC port.")] = 8001,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Prometheus metrics port.")] = 8002,
    instances: Annotated[Optional[int], typer.Option("--instances", help="Model instances (parallel executions); default 1, or the profile's layout from tune --mode throughput.", show_default=False)] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads per instance (default: the profile's, else all cores).", show_default=False)] = None,
    max_batch_size: Annotated[Optional[int], typer.Option("--max-batch-size", help="Largest batch Triton forms (default 32).", show_default=False)] = None,
    queue_delay_us: Annotated[int, typer.Option("--queue-delay-us", help="How long Triton waits to form a batch.")] = 100,
    provider: Annotated[str, typer.Option("--provider", "-p", help="cpu, cuda, tensorrt or openvino (without --profile).")] = "cpu",
) -> None:
    """Serve a model with Triton Inference Server on this machine (the `serve` extra), until Ctrl-C or SIGTERM."""
    for flag, port in (("--http-port", http_port), ("--grpc-port", grpc_port), ("--metrics-port", metrics_port)):
        if not 1 <= port <= 65535:
            raise CLIError(f"{flag} must be from 1 to 65535, received {port}")
    if len({http_port, grpc_port, metrics_port}) < 3:
        raise CLIError("--http-port, --grpc-port and --metrics-port must differ")
    if profile is not None:
        tuned, model, name = profile_target(profile, model, name)
        provider = tuned.provider
        if instances is None and tuned.serving:
            instances = tuned.serving["instances"]
    elif model is None:
        raise CLIError("give an ONNX file, or --profile")
    find_tritonserver()  # before any work: the extra is installed
    with tempfile.TemporaryDirectory(prefix="resnet-deploy-serve-") as repository:
        entry = write_triton_repository(model, repository, TritonOptions(
            name=name, max_batch_size=max_batch_size, instances=1 if instances is None else instances, provider=provider, queue_delay_us=queue_delay_us,
            backend="python", threads=threads, profile=profile))
        server = TritonServer(Path(repository), host=host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port)
        try:
            server.start()
            _announce(server, entry.path.name, entry.config)
            while server.running():
                time.sleep(0.2)
            raise TritonServerError(f"tritonserver stopped by itself: {server.reason()}")
        except KeyboardInterrupt:
            err_console.print("stopping the server")
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the shutdown short
                signal.signal(sig, signal.SIG_IGN)
            server.stop()


def _announce(server: TritonServer, name: str, config: str) -> None:
    import re

    input_name = re.search(r'input \[\s*\{\s*name: ("(?:[^"\\]|\\.)*")', config)
    console.print(f"serving {name} (Triton's Python backend running resnet-deploy's Predictor)", markup=False, soft_wrap=True)
    console.print(f"  HTTP    http://{server.http}/v2/models/{name}", markup=False, soft_wrap=True)
    console.print(f"  gRPC    {server.grpc}", markup=False, soft_wrap=True)
    console.print(f"  metrics http://{server.host}:{server.metrics_port}/metrics", markup=False, soft_wrap=True)
    console.print(f"  load test: resnet-deploy bench MODEL.onnx --url grpc://{server.grpc} --model {name} --mode throughput",
                  markup=False)
    console.print(f"  client: tritonclient.grpc.InferenceServerClient('{server.grpc}').infer('{name}', "
                  f"[InferInput({input_name.group(1) if input_name else 'INPUT'}, [N, C, H, W], 'FP32')])", markup=False, soft_wrap=True)
    console.print("ready; Ctrl-C or SIGTERM stops it", markup=False, soft_wrap=True)
