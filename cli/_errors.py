"""Turn library errors into one line on stderr and a non-zero exit (tracebacks behind an env var)."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

import typer

from resnet_deploy import ResnetDeployError
from resnet_deploy._errors import first_line

from ._terminal import printable, quiet_stdout  # an error may quote a file's or a server's text

F = TypeVar("F", bound=Callable[..., Any])
DEBUG_ENV = "RESNET_DEPLOY_DEBUG"

# Every command's path parameters by role, as the user names them. handle_errors checks each
# command's outputs against all of its inputs before the command starts; outputs a command
# derives itself (export's default name, the INT8 file, tune's model file, a Triton entry) are
# checked where they are derived.
OUTPUT_PARAMS = {"output": "--output", "report": "--report", "json_out": "--json", "csv_out": "--csv",
                 "markdown_out": "--markdown", "plot_out": "--plot"}
INPUT_PARAMS = {"model": "MODEL", "models": "MODEL", "images": "IMAGE", "weights": "--weights", "labels": "--labels",
                "calibration": "--calibration", "eval_data": "--eval-data", "profile": "--profile"}


class CLIError(ResnetDeployError):
    """A usage error found by the CLI itself."""


def fail(message: str, code: int = 1) -> typer.Exit:
    print(f"error: {printable(message)}", file=sys.stderr)
    return typer.Exit(code)


def _paths(value: Any) -> list[Path]:
    if isinstance(value, Path):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, Path)]
    return []


def check_command_paths(params: dict[str, Any]) -> None:
    """No output of a command may be one of its inputs (a model's external data included), or
    another of its outputs, or exist already without ``--force``: one line, before any work."""
    from resnet_deploy._atomic import check_distinct, check_new
    from resnet_deploy.graph.io import model_files

    outputs = {flag: params[name] for name, flag in OUTPUT_PARAMS.items() if isinstance(params.get(name), Path)}
    if not outputs:
        return
    inputs: dict[str, list[Path]] = {}
    for name, flag in INPUT_PARAMS.items():
        for path in _paths(params.get(name)):
            for i, part in enumerate(model_files(path)):
                inputs.setdefault(flag if i == 0 else f"{flag}'s external data", []).append(part)
    check_distinct(outputs, inputs)  # an output that is an input: named as such, even with --force
    check_new(outputs, force=bool(params.get("force")))


def handle_errors(fn: F) -> F:
    """Decorate a command: typed errors exit 1, Ctrl-C/SIGTERM 130, anything unexpected 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            check_command_paths(kwargs)
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:  # the reader of our stdout closed it (`| head`): not an error of ours
            quiet_stdout()
            raise typer.Exit(0) from None
        except ResnetDeployError as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted; nothing was written", 130) from None
        except MemoryError:
            raise fail("out of memory", 1) from None
        except Exception as exc:  # the last line of defence: never a traceback for users
            if os.environ.get(DEBUG_ENV):
                raise
            raise fail(f"unexpected {type(exc).__name__}: {first_line(exc)} "
                       f"(set {DEBUG_ENV}=1 for the traceback)", 2) from None

    return wrapper  # type: ignore[return-value]
