"""Triton's ``config.pbtxt`` built as structured data, so that no name can inject.

The config is a tree of :class:`Message` fields written in protobuf text format: strings are
always quoted and C-escaped by protobuf's own ``text_encoding.CEscape``, enum values are checked
identifiers, numbers are integers. A tensor name that Triton cannot serve (empty, or with control
characters such as a newline) is refused before anything is written; any other name, quotes and
backslashes included, is written escaped and reads back unchanged with Triton's ``ModelConfig``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

from google.protobuf import text_encoding

from ..._errors import OnnxModelError

__all__ = ["Enum", "Message", "Field", "render", "check_tensor_name", "MAX_TENSOR_NAME_BYTES"]

# Triton's names travel in HTTP/JSON and gRPC requests and in its logs: a control character in
# one cannot be typed by a client and could forge log lines. 1 KiB is far beyond any real name.
MAX_TENSOR_NAME_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_IDENT = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class Enum:
    """An enum value of Triton's protobuf (``TYPE_FP32``, ``KIND_CPU``): written bare."""

    value: str

    def __post_init__(self) -> None:
        if not _IDENT.match(self.value):
            raise ValueError(f"not an enum identifier: {self.value!r}")


Scalar = Union[str, int, bool, Enum]
Value = Union[Scalar, "Message", list[Union[Scalar, "Message"]]]


@dataclass
class Message:
    """A protobuf message: an ordered list of ``(field, value)``; a list value is a repeated field."""

    fields: list[tuple[str, Value]] = field(default_factory=list)

    def add(self, name: str, value: Value) -> "Message":
        self.fields.append((name, value))
        return self


Field = tuple[str, Value]


def _scalar(value: Scalar) -> str:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + text_encoding.CEscape(value, as_utf8=True) + '"'
    raise TypeError(f"cannot write {type(value).__name__} into config.pbtxt")


def _lines(message: Message, indent: int) -> list[str]:
    pad, out = "  " * indent, []
    for name, value in message.fields:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"not a field name: {name!r}")
        if isinstance(value, Message):
            out += [f"{pad}{name} {{", *_lines(value, indent + 1), f"{pad}}}"]
        elif isinstance(value, list) and value and all(isinstance(v, Message) for v in value):
            out.append(f"{pad}{name} [")
            for i, item in enumerate(value):
                out += [f"{pad}  {{", *_lines(item, indent + 2), f"{pad}  }}" + ("," if i < len(value) - 1 else "")]
            out.append(f"{pad}]")
        elif isinstance(value, list):
            out.append(f"{pad}{name}: [ " + ", ".join(_scalar(v) for v in value) + " ]")  # type: ignore[arg-type]
        else:
            out.append(f"{pad}{name}: {_scalar(value)}")
    return out


def render(message: Message) -> str:
    """The text format of ``message``, as Triton reads ``config.pbtxt``."""
    return "\n".join(_lines(message, 0)) + "\n"


def check_tensor_name(name: str, source: str) -> None:
    """Refuse, in one line, a tensor name that Triton cannot serve."""
    if not name:
        raise OnnxModelError(f"{source}: a tensor has an empty name, which Triton cannot serve")
    if _CONTROL.search(name):
        raise OnnxModelError(f"{source}: tensor name {name[:60]!r} holds control characters (a newline, say), "
                             "which Triton cannot serve; rename it in the ONNX file")
    if len(name.encode()) > MAX_TENSOR_NAME_BYTES:
        raise OnnxModelError(f"{source}: tensor name {name[:40]!r}... is {len(name.encode())} bytes; "
                             f"Triton entries take names of at most {MAX_TENSOR_NAME_BYTES}")
