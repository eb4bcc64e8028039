"""``resnet-deploy serve``: Triton's own server on this machine, serving one model until Ctrl-C."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from resnet_deploy.serving.triton import TritonOptions, options_from_profile
from resnet_deploy.serving.triton.client import client_command, load_test_command
from resnet_deploy.serving.triton.options import DEFAULT_MAX_REQUEST_BYTES, TritonEntry, request_bytes
from resnet_deploy.serving.triton.serve import Listen, check_listen, serve_model
from resnet_deploy.serving.triton.server import TritonServer

from ._errors import CLIError, handle_errors
from ._output import console, err_console


@handle_errors
def serve(
    model: Annotated[Optional[Path], typer.Argument(
        help="An ONNX file (or none, with --profile).", show_default=False)] = None,
    profile: Annotated[Optional[Path], typer.Option(
        "--profile", help="A deployment profile from resnet-deploy tune: served as tuned.")] = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="Model name on the server (default: the file's stem).")] = None,
    host: Annotated[str, typer.Option(
        "--host",
        help="Address to bind; 0.0.0.0 exposes the server to the network "
             "(docs/serving.md: what to put in front).")] = "127.0.0.1",
    http_host: Annotated[Optional[str], typer.Option(
        "--http-host",
        help="HTTP/REST's own address (default: --host). 127.0.0.1 keeps it on this machine while gRPC faces the "
             "network: one HTTP request can crash Triton 2.51.", show_default=False)] = None,
    http_port: Annotated[int, typer.Option("--http-port", help="HTTP/REST port.")] = 8000,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="gRPC port.")] = 8001,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Prometheus metrics port.")] = 8002,
    instances: Annotated[Optional[int], typer.Option(
        "--instances",
        help="Model instances (parallel executions); default 1, or the profile's layout from tune --mode throughput.",
        show_default=False)] = None,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", help="Intra-op threads per instance (default: the profile's, else all cores).",
        show_default=False)] = None,
    max_batch_size: Annotated[Optional[int], typer.Option(
        "--max-batch-size", help="Largest batch Triton forms (default 32).", show_default=False)] = None,
    queue_delay_us: Annotated[int, typer.Option(
        "--queue-delay-us", help="How long Triton waits to form a batch.")] = 100,
    provider: Annotated[Optional[str], typer.Option(
        "--provider", "-p", help="cpu (default), cuda, tensorrt or openvino; not with --profile, which names its own.",
        show_default=False)] = None,
    max_request_mb: Annotated[float, typer.Option(
        "--max-request-mb",
        help="Refuse (400) a request larger than this, before its data is read.")] = DEFAULT_MAX_REQUEST_BYTES / 2**20,
) -> None:
    """Serve a model with Triton Inference Server on this machine (the `serve` extra), until Ctrl-C or SIGTERM."""
    options = TritonOptions(name=name, max_batch_size=max_batch_size, instances=1 if instances is None else instances,
                            provider=provider or "cpu", queue_delay_us=queue_delay_us,
                            max_request_bytes=request_bytes(max_request_mb), backend="python", threads=threads)
    listen = Listen(host=host, http_host=http_host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port)
    if profile is not None:
        if model is not None:
            raise CLIError("--profile names the model file; drop the MODEL argument")
        check_listen(listen)  # (serve_model checks it too; before the profile's model is read)
        tuned = options_from_profile(profile, options, backend="python", provider=provider, instances=instances)
        model, options = tuned.model, tuned.options
    elif model is None:
        raise CLIError("give an ONNX file, or --profile")
    # A closed terminal sends SIGHUP: stop the server as for Ctrl-C (main() turns SIGTERM into the same).
    signal.signal(signal.SIGHUP, signal.getsignal(signal.SIGTERM) if callable(signal.getsignal(signal.SIGTERM))
                  else signal.default_int_handler)

    def ready(server: TritonServer, entry: TritonEntry) -> None:
        load_test = load_test_command(entry.path.name, server.grpc, model=model, profile=profile)
        _announce(server, entry.path.name, entry.model_path, load_test)

    serve_model(model, options, listen, on_ready=ready, on_stopping=lambda: err_console.print("stopping the server"),
                on_warning=lambda line: err_console.print(f"warning: {line}", markup=False, soft_wrap=True))


def _announce(server: TritonServer, name: str, model_path: Path, load_test: str) -> None:
    for line in (f"serving {name} (Triton's Python backend running resnet-deploy's Predictor)",
                 f"  HTTP    http://{server.http}/v2/models/{name}",
                 f"  gRPC    {server.grpc}",
                 f"  metrics http://{server.host}:{server.metrics_port}/metrics",
                 f"  load test: {load_test}",
                 f"  client (needs tritonclient[grpc]): {client_command(model_path, name, server.grpc)}",
                 "ready; Ctrl-C or SIGTERM stops it"):
        console.print(line, markup=False, soft_wrap=True)
