"""How many bytes ``bench --url`` reads of a server's reply: each reply's bound, stated from what
is expected, and the one error for a reply over it (:mod:`.served_client` applies them)."""

from __future__ import annotations

from .._errors import InputError

__all__ = ["REPLY_BYTES", "HEAD_BYTES", "ReplyTooLarge", "answer_bytes", "too_large"]

REPLY_BYTES = 4 << 20  # metadata, statistics, a config: Triton's are a few KB
HEAD_BYTES = 1 << 20  # what an HTTP reply may send before its body: Triton's headers are a few hundred bytes
VALUE_BYTES = 32  # one number of an answer: 8 bytes in binary, at most 24 characters and ", " as JSON text
ANSWER_JSON_BYTES = 1 << 20  # the JSON around an answer's numbers (names, shape, parameters)


class ReplyTooLarge(InputError):
    """A server's reply over the bytes bench reads of it."""


def answer_bytes(batch: int, classes: int | None) -> int:
    """The most bench reads of an answer to a batch of ``batch``: ``batch x classes`` numbers at
    :data:`VALUE_BYTES` each, plus :data:`ANSWER_JSON_BYTES`. A file whose graph leaves its width
    open is given export's widest head."""
    if classes is None:
        from ..export.options import MAX_CLASSES

        classes = MAX_CLASSES
    return batch * classes * VALUE_BYTES + ANSWER_JSON_BYTES


def too_large(where: str, limit: int, detail: str) -> ReplyTooLarge:
    return ReplyTooLarge(f"{where} answered more than the {limit} bytes bench reads of a reply ({detail})")
