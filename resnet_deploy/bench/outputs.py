"""What a benchmark run leaves: its reports (JSON, CSV, markdown, a plot), checked writable before
any work and written after it, and the verdicts that make its exit status (nothing measured; a
served model that failed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import _json
from .._atomic import atomic_write_bytes, check_writable
from .._errors import InputError, RuntimeBackendError
from .._extras import require
from .report import plot, to_csv, to_markdown
from .schema import BenchResult
from .served import SERVED_PROVIDER, served_failures

__all__ = ["Reports", "check_measured"]


@dataclass(frozen=True)
class Reports:
    """The report files asked for (each optional)."""

    json: Path | None = None
    csv: Path | None = None
    markdown: Path | None = None
    plot: Path | None = None

    def check(self) -> None:
        """Before any work: every path writable, and matplotlib there for a plot (not after the
        measurement and the other reports were written)."""
        for path in (self.json, self.csv, self.markdown, self.plot):
            if path is not None:
                check_writable(path)
        if self.plot is not None:
            require("--plot", "matplotlib", extra="plot")

    def write(self, result: BenchResult, *, replace: bool) -> None:
        """Each report, atomically; without ``replace`` never over a file made meanwhile."""
        if self.json:
            atomic_write_bytes(self.json, (_json.dumps(result.to_dict(), indent=2, default=str) + "\n").encode(),
                               replace=replace)
        if self.csv:
            atomic_write_bytes(self.csv, to_csv(result.records).encode(), replace=replace)
        if self.markdown:
            atomic_write_bytes(self.markdown, to_markdown(result).encode(), replace=replace)
        if self.plot:
            plot(result, self.plot, replace=replace)


def check_measured(result: BenchResult) -> None:
    """A table of failures is no benchmark: refuse it before any report is written."""
    failed = [r for r in result.records if r.error]
    if len(failed) == len(result.records):
        first = (f" (first: {failed[0].engine} b{failed[0].batch_size}: {(failed[0].error or '')[:160]})"
                 if failed else "")
        raise RuntimeBackendError(f"nothing was measured: all {len(failed)} engine runs failed{first}; "
                                  "no report was written")


def check_served(result: BenchResult) -> None:
    """A served model that failed in any group fails the run (after the reports: they hold every row)."""
    if failed := served_failures(result.records):
        first, groups = failed[0], sum(r.provider == SERVED_PROVIDER for r in result.records)
        raise InputError(f"the served model failed in {len(failed)} of {groups} groups "
                         f"(first: {first.engine} b{first.batch_size}: {(first.error or '')[:200]})")
