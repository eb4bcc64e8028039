r"""Terminal output: rich tables on stdout, progress and warnings on stderr.

Every name that comes from a file or the user (paths, labels, tensor and metadata names, error
text) goes through :func:`escape`. Rich reads ``[word]`` as markup, so ``cat[dog].png`` must be
escaped to be shown as it is (and ``a[/x].onnx`` not to end the command in a MarkupError). Control
characters are shown as the escapes that name them (:func:`._terminal.printable`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.markup import escape as escape_markup
from rich.table import Table

from resnet_deploy import _json
from resnet_deploy._atomic import atomic_write_bytes, check_writable
from resnet_deploy.export.pipeline import StageReport

from ._terminal import printable, quiet_stdout


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader of our output went away (``| head``): stop quietly with status 0, as
        plain prints do (rich's own handler exits 1)."""
        quiet_stdout()
        raise SystemExit(0)


def escape(text: object) -> str:
    """``text`` fit for the terminal: control characters as escapes (``\\x1b``, ``\\u202e``)
    and rich markup escaped. A drop-in for ``rich.markup.escape``."""
    return escape_markup(printable(text))


console = _Console(highlight=False)
err_console = _Console(stderr=True, highlight=False)


def progress(message: str) -> None:
    err_console.print(f"[dim]... {escape(message)}[/dim]")


def stage_table(stages: Sequence[StageReport], title: str) -> Table:
    """Op counts per stage, one row per op type; changed counts shown as ``a -> b``."""
    shown = [s for s in stages if s.name in ("load", "export", "simplify", "fuse")]
    ops = sorted({op for s in shown for op in s.ops}, key=lambda op: (-max(s.ops.get(op, 0) for s in shown), op))
    table = Table(title=escape(title), title_justify="left")
    table.add_column("op")
    for s in shown:
        table.add_column(s.name, justify="right")
    for op in ops:
        counts = [s.ops.get(op, 0) for s in shown]
        cells = []
        for i, n in enumerate(counts):
            changed = i > 0 and n != counts[i - 1]
            cells.append(f"[bold]{n}[/bold]" if changed else str(n))
        table.add_row(op, *cells)
    return table


def stages_summary(stages: Sequence[StageReport]) -> Table:
    table = Table(show_header=True, title_justify="left")
    table.add_column("stage")
    table.add_column("time", justify="right")
    table.add_column("result")
    for s in stages:
        table.add_row(s.name, f"{s.seconds:.2f}s", escape(s.note))
    return table


def print_pipeline_result(
    title: str, stages: Sequence[StageReport], path: Path, size_bytes: int, seconds: float,
    fusions: dict[str, int], parity: str
) -> None:
    """Op counts per stage, the stage summaries, and one closing line (export and optimize)."""
    console.print(stage_table(stages, title))
    console.print(stages_summary(stages))
    applied = ", ".join(f"{k} x{v}" for k, v in fusions.items() if v) or "nothing to fuse"
    console.print(f"[green]wrote[/green] {escape(str(path))} ({human_bytes(size_bytes)}) in {seconds:.1f}s; "
                  f"fusions: {applied}; {parity}")


def write_json(path: str | Path, payload: Any, *, replace: bool = True) -> None:
    """Strict JSON, written atomically; ``replace=False`` (no --force) never overwrites a file."""
    atomic_write_bytes(path, (_json.dumps(payload, indent=2, default=str) + "\n").encode(), replace=replace)


def check_report(path: Path | None) -> None:
    """Fail before any work when a --report/--json path cannot be written."""
    if path is not None:
        check_writable(path)


def human_bytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"
