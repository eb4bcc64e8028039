"""The CLI test machinery, shared by ``tests/cli``: run a command, and the bad-input tables.

A command runs in-process through typer's ``CliRunner`` (``run_cli``), set up as ``main()`` sets
up the console script: warnings printed as one ``warning:`` line on stderr under Python's default
filters, no traceback env var, the working directory the case asks for. What only a real process
shows (exit codes after signals, a closed stdout, the console script itself, ``os._exit``) is
checked through ``run_subprocess`` in the tests marked ``e2e``.

Two tables drive every command with bad input, each row by id (``-k <id>`` finds it):

- ``Case``: the command fails with one ``error:`` line holding every needle, exit status above 0,
  no traceback, an existing output (replaced with ``--force``) left as it was, nothing else written;
- ``Alias``: an output that is one of the command's inputs by any path (``..``, a hard link, a
  symbolic link, external data) is refused before any work, every file left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from typer.testing import CliRunner

from resnet_deploy_cli._errors import DEBUG_ENV
from resnet_deploy_cli.main import _show_warning, app

# The console script as `python -m`, for the e2e tests; the installed script is tested once by name.
CLI = [sys.executable, "-m", "resnet_deploy_cli.main"]


@dataclass(frozen=True)
class Outcome:
    """What a user sees of one command: its exit status, stdout and stderr."""

    returncode: int
    stdout: str
    stderr: str
    output: str  # stdout and stderr as the terminal shows them, interleaved


@contextlib.contextmanager
def _as_main(cwd: Path | None) -> Iterator[None]:
    """The process state ``main()`` sets up, for one in-process command, restored afterwards."""
    previous = Path.cwd()
    with warnings.catch_warnings():
        # Python's default filters (pytest's are its own), then main()'s own.
        warnings.resetwarnings()
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        warnings.showwarning = _show_warning
        warnings.filterwarnings("ignore", module=r"torch(\..*)?$")
        warnings.filterwarnings("ignore", module=r"onnxscript(\..*)?$")
        if cwd is not None:
            os.chdir(cwd)
        try:
            yield
        finally:
            os.chdir(previous)


def run_cli(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> Outcome:
    """Run ``resnet-deploy ARGS`` in-process. An exception that escapes the command is shown as the
    interpreter would show it, a traceback on stderr and exit status 1, so that checks for
    "Traceback" see it."""
    with _as_main(cwd):
        result = CliRunner().invoke(app, [str(a) for a in args], env={**(env or {}), DEBUG_ENV: None})
    stderr, output = result.stderr, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        shown = "".join(traceback.format_exception(*result.exc_info))  # type: ignore[misc]
        stderr, output = stderr + shown, output + shown
    return Outcome(result.exit_code, result.stdout, stderr, output)


def run_subprocess(*args: str | Path, cwd: Path | None = None, timeout: float = 300) -> Outcome:
    """Run ``resnet-deploy ARGS`` as its own process, through ``main()``."""
    proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, proc.stdout + proc.stderr)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def note_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note:")]


def strict_json(text: str) -> object:
    """JSON without bare NaN/Infinity: a value that is not finite must be null."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: bare {constant}")

    return json.loads(text, parse_constant=refuse)


def invoke(*args: str | Path, code: int = 0) -> Outcome:
    """Run the CLI in-process and check its exit status (0 unless ``code`` says otherwise)."""
    result = run_cli(*args)
    print(result.stdout, result.stderr)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return result


def assert_clean_failure(result: Outcome, *needles: str) -> None:
    """Exit 1, no traceback, one ``error:`` line holding every needle."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# -- the bad-input table ----------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    args: list[str]  # {name} is replaced by the fixture file of that name, {out} by the output path
    needles: list[str]
    writes: list[str] = field(default_factory=lambda: ["{out}"])


# External-data entries of one tensor, wrong one field at a time: the entries, and what the error
# says. The `files` fixture makes one model of each; info, predict and optimize have a row each.
EXTERNAL = {
    "offset-text": ({"location": "weights.bin", "offset": "abc"},
                    ["'offset' must be a whole number of bytes", "'abc'"]),
    "offset-negative": ({"location": "weights.bin", "offset": "-5"},
                        ["'offset' must be a whole number of bytes", "'-5'"]),
    "length-text": ({"location": "weights.bin", "length": "1e3"},
                    ["'length' must be a whole number of bytes", "'1e3'"]),
    "length-negative": ({"location": "weights.bin", "length": "-1"},
                        ["'length' must be a whole number of bytes", "'-1'"]),
    "length-beyond": ({"location": "weights.bin", "length": "999999999"},
                      ["reads bytes 0-999999999 of 'weights.bin', which has"]),
    "offset-beyond": ({"location": "weights.bin", "offset": "999999999"},
                      ["'offset' 999999999 lies beyond the end of 'weights.bin'"]),
    "no-location": ({"offset": "0"}, ["names no 'location'"]),
    "location-folder": ({"location": "sub"}, ["location 'sub' is a folder, not a file"]),
}


def external_cases(command: str, extra: list[str], writes: list[str]) -> list[Case]:
    """One row per wrong external-data entry, for one command that reads a model."""
    return [Case(f"{command}-external-{name}", [command, "{ext-" + name + "}", *extra],
                 [f"{name}.onnx", *needles], writes)
            for name, (_, needles) in EXTERNAL.items()]


TOO_MANY = str(4 * len(os.sched_getaffinity(0)) + 1)  # threads: one above the cap of 4x the cores


def fill(text: str, files: dict[str, Path], tmp: Path, out: Path) -> str:
    text = text.replace("{out}", str(out)).replace("{tmp}", str(tmp))
    for key, path in files.items():
        text = text.replace("{" + key + "}", str(path))
    return text


def check_bad_input(case: Case, files: dict[str, Path], tmp_path: Path, *,
                    run: Callable[..., Outcome] = run_cli) -> None:
    """Run one row and check what the user is left with: one line, a failing status, no file."""
    out = tmp_path / "out.onnx"
    existing = tmp_path / "existing.onnx"
    existing.write_bytes(b"previous content")
    args = [fill(a, files, tmp_path, out) for a in case.args]
    if "{out}" in case.args and case.id != "no-output-folder":
        # Point the output at an existing file, with --force (without it, the command refuses
        # before any work): it must survive the failure untouched.
        args = [str(existing) if a == str(out) else a for a in args] + ["--force"]
    result = run(*args)
    print(" ".join(args[:3]), "->", result.returncode, result.stderr.strip())
    assert result.returncode > 0  # 0 is success; a negative code is a crash by signal
    assert "Traceback" not in result.stderr + result.stdout
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and len(errors[0]) < 400, result.stderr
    for needle in case.needles:
        assert needle in errors[0], errors[0]
    assert existing.read_bytes() == b"previous content"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["existing.onnx"], left  # nothing partial, no temporary file
    assert not files["marker"].exists()  # the malicious pickle never ran


# -- the aliasing table: no output may be an input, by any path ---------------------------------------

@dataclass
class Alias:
    id: str
    args: list[str]  # paths relative to the case's folder, which is also the working directory
    needles: list[str]
    link: tuple[str, str, str] | None = None  # ("hard" | "sym", link name, target)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (b"->" + os.readlink(p).encode() if p.is_symlink() else p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()}


def check_alias(case: Alias, sources: Path, tmp_path: Path, *, run: Callable[..., Outcome] = run_cli) -> None:
    """Every output of every command against every input, by any path: refused before any work,
    one line naming both, every file (and nothing else) left as it was."""
    import shutil

    work = tmp_path / "w"
    shutil.copytree(sources, work, symlinks=True)
    if case.link:
        kind, name, target = case.link
        if kind == "hard":
            os.link(work / target, work / name)
        else:
            (work / name).symlink_to(target)
    before = _snapshot(work)
    result = run(*case.args, cwd=work)
    print(" ".join(case.args), "->", result.returncode, result.stderr.strip())
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and len(errors[0]) < 400, result.stderr
    for needle in case.needles:
        assert needle in errors[0], errors[0]
    assert _snapshot(work) == before
