"""What Triton's log says: why it failed, why a model died, and how the server ended.

``tritonserver`` writes glog lines (``E1207 02:21:32.56 123 file.cc:42] "text"``), a table of
its options and, on a CPU-only machine, errors about the GPU it does not have. These functions
read that text; they never start or stop anything (:mod:`.server` does).
"""

from __future__ import annotations

import re
import signal

__all__ = ["reason", "stub_death", "exit_reason", "last_lines"]

# Errors a CPU-only machine always logs: no CUDA driver, no NVML, no DCGM.
_NOISE = ("CudaDriverHelper", "NVML", "DCGM", "pinned memory", "CUDA memory pool")
_GLOG = re.compile(r"^[EWI]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ")
MAX_REASON_CHARS = 400


def _clean(line: str) -> str:
    """A log line without glog's prefix and quotes, cut before a Python traceback (``\\n``)."""
    text = _GLOG.sub("", line.strip()).strip('"')
    return text.split("\\n")[0].strip()


def _is_error(line: str) -> bool:
    return line.lower().startswith(("error", "failed", "internal", "unavailable", "invalid")) or "error" in line.lower()


def _lines(text: str) -> list[str]:
    return [_clean(ln) for ln in text.splitlines() if ln.strip()]


def _short(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "..."


def reason(text: str) -> str:
    """The server's own words for what went wrong, in one line: why a model failed to load,
    else its first error that is not about the GPU this machine does not have."""
    lines = _lines(text)
    ranked = ([ln for ln in lines if "failed to load '" in ln or "Poll failed for model" in ln]
              + [ln for ln in lines if _is_error(ln) and not any(n in ln for n in _NOISE)]
              + lines[-1:])
    picked = ranked[0] if ranked else "no output"
    parse = next((ln[ln.index("Error parsing"):] for ln in lines if "Error parsing text-format" in ln), None)
    if parse and parse not in picked:  # a syntax error: protobuf says where, on a line of its own
        picked = f"{picked}: {parse}"
    return _short(picked)


def stub_death(text: str) -> str | None:
    """What the log says last about a Python-backend stub that died (its ``what():`` line)."""
    lines = _lines(text)
    return next((ln.split("what():")[-1].strip()
                 for ln in reversed(lines) if "what():" in ln or "Stub process" in ln), None)


def last_lines(text: str, count: int = 3) -> list[str]:
    """The log's last ``count`` lines that say something: not the options table, not GPU noise."""
    said = [ln for ln in _lines(text) if not ln.startswith(("|", "+")) and not any(n in ln for n in _NOISE)]
    return said[-count:]


def exit_reason(code: int | None, text: str) -> str:
    """How the server ended, in one line. Killed by a signal it did not ask for (SIGSEGV, SIGABRT,
    SIGKILL from the OOM killer) is a crash: its name and the log's last lines, since the
    process had no chance to log why. An exit with a status is the server's own decision: the
    reason it logged."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown signal"
        tail = "; ".join(ln if len(ln) <= 120 else ln[:120] + "..." for ln in last_lines(text)) or "nothing"
        known = (" (one request of JSON nested tens of thousands deep crashes Triton 2.51 this way: "
                 "docs/serving.md, 'Exposing the server')") if -code == signal.SIGSEGV else ""
        return f"tritonserver crashed: killed by signal {-code} ({name}){known}; its log ends: {tail}"
    return f"tritonserver exited by itself with status {code}: {reason(text)}"
