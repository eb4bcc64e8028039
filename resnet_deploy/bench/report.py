"""Reports from one schema: :class:`~resnet_deploy.bench.schema.Record` fields are the CSV and
JSON columns; :data:`COLUMNS` renders them for markdown and for the terminal table, where the
lowest-priority columns are dropped until the table fits the width (the full detail stays in
JSON, CSV and markdown)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable, Sequence

from .._atomic import atomic_write_bytes
from .._extras import require
from .schema import P90_P50_LIMIT, RECORD_FIELDS, ROUND_SPREAD_LIMIT, BenchResult, Record

__all__ = ["Column", "COLUMNS", "columns_for", "fit_columns", "row_label", "sorted_rows", "footnotes", "Footnote",
           "NoteKind", "to_csv", "to_markdown", "plot", "COLUMN_GAP"]

COLUMN_GAP = 3  # characters between two terminal columns (padding, rule, padding)


def _num(fmt: str, key: str) -> Callable[[Record], str]:
    def render(r: Record) -> str:
        value = getattr(r, key)
        return "" if value is None else format(value, fmt)

    return render


def row_label(r: Record) -> str:
    """The engine's name, ``*`` for synthetic INT8 calibration, ``!`` for an unstable measurement."""
    return r.engine + ("*" if r.synthetic_calibration else "") + ("!" if r.unstable else "")


@dataclass(frozen=True)
class Column:
    key: str
    short: str  # terminal header
    long: str  # markdown header
    render: Callable[[Record], str]
    priority: int  # the terminal table drops the highest numbers first; 0 is never dropped
    numeric: bool = True
    applies: Callable[[Sequence[Record]], bool] = lambda records: True


def _any(key: str) -> Callable[[Sequence[Record]], bool]:
    return lambda records: any(getattr(r, key) is not None for r in records)


def _throughput(records: Sequence[Record]) -> bool:
    return any(r.mode == "throughput" for r in records)


COLUMNS: tuple[Column, ...] = (
    Column("engine", "engine", "engine", row_label, 0, numeric=False),
    Column("provider", "prov", "provider", lambda r: r.provider, 9, numeric=False),
    Column("precision", "prec", "precision", lambda r: r.precision, 8, numeric=False),
    Column("batch_size", "b", "batch", _num("d", "batch_size"), 0),
    Column("concurrency", "c", "concurrency", _num("d", "concurrency"), 0, applies=_throughput),
    Column("p50_ms", "p50 ms", "p50 ms", _num(".2f", "p50_ms"), 1),
    Column("p90_ms", "p90 ms", "p90 ms", _num(".2f", "p90_ms"), 6),
    Column("p99_ms", "p99 ms", "p99 ms", _num(".2f", "p99_ms"), 5),
    Column("images_per_s", "img/s", "images/s", _num(".1f", "images_per_s"), 2),
    Column("speedup_vs_baseline", "speed", "speed-up vs baseline", lambda r: "" if r.speedup_vs_baseline is None
           else f"{r.speedup_vs_baseline:.2f}x", 1),
    Column("speedup_min", "range", "per-round range", lambda r: "" if r.speedup_min is None
           else f"{r.speedup_min:.2f}-{r.speedup_max:.2f}", 3),
    Column("max_rel_error", "rel err", "max rel error", _num(".1e", "max_rel_error"), 4),
    Column("peak_rss_mb", "peak MB", "peak RSS MB", _num(".0f", "peak_rss_mb"), 3),
    Column("rss_mb", "RSS MB", "RSS MB", _num(".0f", "rss_mb"), 7),
    Column("gflops", "GFLOP/s", "GFLOP/s", _num(".0f", "gflops"), 7, applies=_any("gflops")),
    Column("peak_fraction", "of peak", "of peak", _num(".0%", "peak_fraction"), 6, applies=_any("peak_fraction")),
    Column("accuracy", "acc", "accuracy", _num(".2%", "accuracy"), 2, applies=_any("accuracy")),
)


def columns_for(records: Sequence[Record]) -> list[Column]:
    return [c for c in COLUMNS if c.applies(records)]


def sorted_rows(records: Sequence[Record]) -> list[Record]:
    """Measured rows by batch, concurrency, then fastest first."""
    ok = [r for r in records if not r.error]
    if _throughput(ok):
        return sorted(ok, key=lambda r: (r.batch_size, r.concurrency, -(r.images_per_s or 0)))
    return sorted(ok, key=lambda r: (r.batch_size, r.concurrency, r.p50_ms or 0))


def fit_columns(records: Sequence[Record], width: int) -> list[Column]:
    """The columns that fit ``width`` terminal cells, dropping the highest priority numbers first."""
    rows = sorted_rows(records)
    chosen = columns_for(records)

    def needed(cols: list[Column]) -> int:
        widths = [max([len(c.short)] + [len(c.render(r)) for r in rows]) for c in cols]
        return sum(widths) + COLUMN_GAP * (len(cols) - 1)

    while needed(chosen) > width and any(c.priority > 0 for c in chosen):
        worst = max((c for c in chosen if c.priority > 0), key=lambda c: (c.priority, COLUMNS.index(c)))
        chosen.remove(worst)
    return chosen


class NoteKind(Enum):
    """What a footnote tells: the terminal colours it by this, never by its words."""

    INFO = "info"  # how to read the table; synthetic calibration; a served engine's server-side figures
    UNSTABLE = "unstable"  # rows measured on a machine that moved: re-run before trusting them
    FAILED = "failed"  # an engine run that failed, and why


@dataclass(frozen=True)
class Footnote:
    kind: NoteKind
    text: str
    item: bool = False  # one item of the list the note before it opens

    @property
    def line(self) -> str:
        return f"  {self.text}" if self.item else self.text


def footnotes(result: BenchResult) -> list[Footnote]:
    records = result.records
    mode = "throughput" if _throughput(records) else "latency"
    rounds = max((r.rounds or 0 for r in records), default=0)
    how = ("images/s over the baseline's" if mode == "throughput" else "baseline p50 / engine p50")
    notes = [Footnote(NoteKind.INFO, f"baseline: {result.baseline_note or result.baseline}. "
                      f"speed = {how} at the same batch size, the median over {rounds} interleaved rounds; "
                      "range = min-max of the per-round ratios.")]
    if any(r.synthetic_calibration for r in records):
        notes.append(Footnote(NoteKind.INFO, "* INT8 calibrated on synthetic inputs: fit for timing only "
                                             "(pass --calibration for real accuracy)."))
    unstable = [r for r in records if r.unstable]
    if unstable:
        notes.append(Footnote(NoteKind.UNSTABLE, f"! unstable (p90/p50 > {P90_P50_LIMIT:g} or per-round ratios "
                              f"max/min > {ROUND_SPREAD_LIMIT:g}); the machine was busy, "
                              "re-run before trusting these rows:"))
        notes += [Footnote(NoteKind.UNSTABLE,
                           f"{r.engine} b{r.batch_size}" + (f" c{r.concurrency}" if mode == "throughput" else "")
                           + f": {r.unstable_reason}", item=True) for r in unstable]
    notes += [Footnote(NoteKind.INFO, _served_note(r, mode)) for r in records if r.server_compute_ms is not None]
    notes += [Footnote(NoteKind.FAILED, f"{r.engine} b{r.batch_size} failed: {r.error}") for r in records if r.error]
    return notes


def _served_note(r: Record, mode: str) -> str:
    """A served engine: what its client-side latency was made of, from the server's statistics."""
    batch = f", {r.server_batch:.1f} requests per execution" if r.server_batch else ""
    return (f"{r.engine} b{r.batch_size}" + (f" c{r.concurrency}" if mode == "throughput" else "")
            + f" on the server: queue {r.server_queue_ms or 0:.2f} ms + compute {r.server_compute_ms:.2f} ms "
              f"per request{batch}"
            + (f"; client p50 {r.p50_ms:.2f} ms" if r.p50_ms is not None else ""))


def to_csv(records: Sequence[Record]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(RECORD_FIELDS))
    writer.writeheader()
    for r in records:
        writer.writerow(r.to_dict())
    return buf.getvalue()


def _environment_line(result: BenchResult) -> str:
    env = result.environment
    isa = ", ".join(k for k, v in env.get("isa", {}).items() if v) or "none"
    load = ""
    if env.get("loadavg_start") and env.get("loadavg_end"):
        load = f", load average {env['loadavg_start'][0]:.2f} -> {env['loadavg_end'][0]:.2f}"
    model = (result.options.get("model") if not result.options.get("files")
             else ", ".join(map(str, result.options["files"])))
    return (f"Model {model}, {env.get('cpu')}, {env.get('cores')} cores, {env.get('threads')} threads, ISA: {isa}"
            + (f", GPU: {env['gpu']}" if env.get("gpu") else "") + load)


def _cell(text: object) -> str:
    """A markdown table cell: a `|` (a file named `a|b.onnx`) or a line break (an error message)
    would end the cell or the row."""
    return " ".join(str(text).split()).replace("|", "\\|")


def to_markdown(result: BenchResult) -> str:
    cols = columns_for(result.records)
    lines = [
        _environment_line(result),
        "",
        "| " + " | ".join(c.long for c in cols) + " | notes |",
        "|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|---|",
    ]
    for r in result.records:
        if r.error:
            lines.append(f"| {_cell(r.engine)} | " + " | ".join("" for _ in cols[1:])
                         + f" | failed: {_cell(r.error)} |")
            continue
        notes = "; ".join(n for n in (
            "baseline" if r.engine == result.baseline else "",
            "synthetic calibration" if r.synthetic_calibration else "",
            f"unstable: {r.unstable_reason}" if r.unstable else "",
        ) if n)
        lines.append("| " + " | ".join(_cell(c.render(r)) for c in cols) + f" | {_cell(notes)} |")
    lines += [""] + [f"  - {n.text}" if n.item else f"- {n.text}" for n in footnotes(result)]
    return "\n".join(lines) + "\n"


def plot(result: BenchResult, path: str | Path, *, replace: bool = True) -> None:
    """Latency and throughput against batch size (throughput mode: against concurrency), one line
    per engine (matplotlib, PNG)."""
    require("--plot", "matplotlib", extra="plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = [r for r in result.records if not r.error]
    throughput = _throughput(ok)
    x_key, x_label = ("concurrency", "concurrent requests") if throughput else ("batch_size", "batch size")
    series: dict[str, list[Record]] = {}
    for r in ok:
        series.setdefault(r.engine + (f" b{r.batch_size}" if throughput else ""), []).append(r)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, rows in sorted(series.items()):
        rows.sort(key=lambda r: getattr(r, x_key))
        x = [getattr(r, x_key) for r in rows]
        ax1.plot(x, [r.p50_ms for r in rows], marker="o", label=name)
        ax2.plot(x, [r.images_per_s for r in rows], marker="o", label=name)
    for ax, label in ((ax1, "p50 latency (ms)"), (ax2, "throughput (images/s)")):
        ax.set_xlabel(x_label)
        ax.set_ylabel(label)
        ax.set_xscale("log", base=2)
        ax.grid(True, alpha=0.3)
    ax1.set_yscale("log")
    ax2.legend(fontsize=8)
    env = result.environment
    fig.suptitle(f"{result.options.get('model')} on {env.get('cpu')} ({env.get('threads')} threads)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue(), replace=replace)
