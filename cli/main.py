"""The typer application and the console-script entry point."""

from __future__ import annotations

import os
import signal
import sys
import warnings
from types import FrameType
from typing import Annotated

import typer

import resnet_deploy

from ._terminal import quiet_stdout
from .batch import batch
from .bench import bench
from .bundle import bundle
from .compare import compare
from .export import export
from .info import info
from .models import models
from .optimize import optimize
from .predict import predict
from .quantize import quantize
from .serve import serve
from .triton import triton
from .tune import tune

app = typer.Typer(
    name="resnet-deploy",
    help="ResNets from PyTorch definitions to fast, verified ONNX deployments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
)
app.command("export")(export)
app.command("optimize")(optimize)
app.command("predict")(predict)
app.command("batch")(batch)
app.command("info")(info)
app.command("quantize")(quantize)
app.command("bench")(bench)
app.command("triton")(triton)
app.command("bundle")(bundle)
app.command("serve")(serve)
app.command("tune")(tune)
app.command("compare")(compare)
app.command("models")(models)


def _version(value: bool) -> None:
    if value:
        print(f"resnet-deploy {resnet_deploy.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, metavar="", help="Print the version.")] = False,
) -> None:
    """ResNets from PyTorch definitions to fast, verified ONNX deployments."""


def _sigterm(_signum: int, _frame: FrameType | None) -> None:
    # Turn SIGTERM into the same clean unwinding as Ctrl-C: temporary files are removed.
    raise KeyboardInterrupt


def _show_warning(message: Warning | str, category: type[Warning], *_args: object, **_kwargs: object) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm)
    # A child a library forks without exec (OpenVINO's telemetry) would inherit the handler above,
    # which cannot run while that child is stuck in C (a DNS lookup): SIGTERM then did nothing, and
    # only SIGKILL ended it (pass 6). Forked children get the default back.
    os.register_at_fork(after_in_child=_default_sigterm)
    warnings.showwarning = _show_warning  # one line, no source excerpt
    warnings.filterwarnings("ignore", module=r"torch(\..*)?$")
    warnings.filterwarnings("ignore", module=r"onnxscript(\..*)?$")
    code: int = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:  # a second Ctrl-C while the first one unwinds
        print("error: interrupted", file=sys.stderr)  # each command's own line said what it keeps
        code = 130
    # Exit without interpreter finalisation: a signal that native code (onnxsim's threads)
    # delivers late must not turn a clean exit 130 into a death by SIGINT. Every file we write
    # is already closed or removed by then; flush what was printed.
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `resnet-deploy info --json | head -1`: the reader has what it wanted
        quiet_stdout()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
