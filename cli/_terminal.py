r"""What the CLI's two writers share, the error line and the rich console: how text from a file
is made safe to show, and how stdout goes quiet once its reader has gone.

A terminal reads control characters as commands: a label ``\x1b]0;TITLE\x07`` would retitle the
window, ``\x1b[2K`` erase the line, U+202E reverse the text that follows (rich drops BEL and
CR, not ESC). :func:`printable` shows those as the escapes that name them.
"""

from __future__ import annotations

import os
import re
import sys

# C0 and C1 controls, DEL, and Unicode's invisible direction and line controls (bidi embeddings,
# overrides and isolates, LRM/RLM/ALM, the line and paragraph separators).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` with its control characters as the escapes that name them (``\\x1b``, ``\\u202e``):
    for a plain print, or a rich ``Text``, which reads no markup."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), str(text))


def quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so that nothing else tries to write to
    the closed pipe (Python's documented recipe for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
