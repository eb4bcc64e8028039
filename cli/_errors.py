"""Turn library errors into one line on stderr and a non-zero exit (tracebacks behind an env var)."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable, TypeVar

import typer

from resnet_deploy import ResnetDeployError
from resnet_deploy._errors import first_line

F = TypeVar("F", bound=Callable[..., Any])
DEBUG_ENV = "RESNET_DEPLOY_DEBUG"


class CLIError(ResnetDeployError):
    """A usage error found by the CLI itself."""


def fail(message: str, code: int = 1) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Decorate a command: typed errors exit 1, Ctrl-C/SIGTERM 130, anything unexpected 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
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
            raise fail(f"unexpected {type(exc).__name__}: {first_line(exc)} (set {DEBUG_ENV}=1 for the traceback)", 2) from None

    return wrapper  # type: ignore[return-value]
