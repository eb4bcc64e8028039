"""``bench --url``: what a server answers, read as KServe v2 JSON and checked before it is used.

tritonclient parses every HTTP reply as JSON (and gRPC's ``as_json=True`` gives the same dicts).
A port that is not KServe v2's answers something else: Triton's metrics port answers every path
with Prometheus text and status 200, so a readiness check passes there and the model's metadata
ended in a bare ``JSONDecodeError`` that named no server. A server that leaves out what the
protocol promises (metadata without ``inputs``, statistics without ``model_stats``) ended in a
bare ``KeyError`` or ``IndexError``. Each is one line naming the URL and what was missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._errors import InputError
from .served_stats import ServerTimes

__all__ = ["ServedIO", "not_kserve", "read_metadata", "read_statistics"]

_WRONG_PORT = "is it Triton's metrics port? --url takes the HTTP or gRPC port, 8000 or 8001 by default"


@dataclass(frozen=True)
class ServedIO:
    """The tensors a load test uses: the model's first input (its name and datatype) and first output."""

    input: str
    datatype: str
    output: str


def not_kserve(where: str, what: str) -> InputError:
    """The error for a reply from ``where`` to a request for ``what`` that is not KServe v2 JSON."""
    return InputError(f"{where} did not answer {what} in KServe v2 JSON ({_WRONG_PORT})")


def read_metadata(client: Any, protocol: str, model: str, where: str, *,
                  client_timeout: float | None = None) -> ServedIO:
    """The input and output of ``model`` from ``client`` (tritonclient's, of ``protocol``);
    ``client_timeout`` is gRPC's per-call deadline (HTTP's is the connection's)."""
    what = f"the metadata of model {model!r}"
    meta = _ask(client.get_model_metadata, protocol, model, where, what, client_timeout)
    first_input, first_output = (_first(meta, key, where, what) for key in ("inputs", "outputs"))
    return ServedIO(_text(first_input, "name", where, what), _text(first_input, "datatype", where, what),
                    _text(first_output, "name", where, what))


def read_statistics(client: Any, protocol: str, model: str, where: str, *,
                    client_timeout: float | None = None) -> ServerTimes:
    """The statistics of ``model`` (the counts and times a round is measured by), read as
    :func:`read_metadata` reads its metadata."""
    what = f"the statistics of model {model!r}"
    data = _ask(client.get_inference_statistics, protocol, model, where, what, client_timeout)
    if not isinstance(_first(data, "model_stats", where, what).get("inference_stats"), dict):
        raise InputError(f"{where} answered {what} without its 'inference_stats'")
    return ServerTimes.from_statistics(data)


def _ask(call: Any, protocol: str, model: str, where: str, what: str, client_timeout: float | None) -> dict[str, Any]:
    """``call(model)`` (a tritonclient getter; gRPC's as JSON, within ``client_timeout``), whose
    reply must be a JSON object."""
    try:
        reply = call(model, as_json=True, client_timeout=client_timeout) if protocol == "grpc" else call(model)
    except ValueError:  # the HTTP client's JSONDecodeError (rapidjson's and json's are ValueErrors)
        raise not_kserve(where, what) from None
    if not isinstance(reply, dict):
        raise not_kserve(where, what)
    return reply


def _first(reply: dict[str, Any], key: str, where: str, what: str) -> dict[str, Any]:
    """The first entry of the list ``reply[key]``; missing or empty, an error naming ``key``."""
    items = reply.get(key)
    if not items:  # gRPC's JSON leaves an empty list out: missing and empty are one case
        raise InputError(f"{where} answered {what} without any {key!r}")
    if not isinstance(items, list) or not isinstance(items[0], dict):
        raise InputError(f"{where} answered {what} with {key!r} that is not a list of objects")
    return items[0]


def _text(entry: dict[str, Any], key: str, where: str, what: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise InputError(f"{where} answered {what} with a tensor without its {key!r}")
    return value
