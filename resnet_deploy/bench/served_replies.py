"""``bench --url``: what a server answers read as KServe v2 JSON, or one line naming the URL.

tritonclient parses every HTTP reply as JSON (and gRPC's ``as_json=True`` gives the same dicts).
A port that is not KServe v2's answers something else: Triton's metrics port answers every path
with Prometheus text and status 200, so a readiness check passes there and the model's metadata
ended in a bare ``JSONDecodeError`` that named no server.
"""

from __future__ import annotations

from typing import Any

from .._errors import InputError

__all__ = ["not_kserve", "read_metadata", "read_statistics"]

_WRONG_PORT = "is it Triton's metrics port? --url takes the HTTP or gRPC port, 8000 or 8001 by default"


def not_kserve(where: str, what: str) -> InputError:
    """The error for a reply from ``where`` to a request for ``what`` that is not KServe v2 JSON."""
    return InputError(f"{where} did not answer {what} in KServe v2 JSON ({_WRONG_PORT})")


def read_metadata(client: Any, protocol: str, model: str, where: str, *, client_timeout: float | None = None) -> Any:
    """The metadata of ``model`` from ``client`` (tritonclient's, of ``protocol``) as a dict;
    ``client_timeout`` is gRPC's per-call deadline (HTTP's is the connection's)."""
    what = f"the metadata of model {model!r}"
    try:
        if protocol == "grpc":
            return client.get_model_metadata(model, as_json=True, client_timeout=client_timeout)
        return client.get_model_metadata(model)
    except ValueError:  # the HTTP client's JSONDecodeError (rapidjson's and json's are ValueErrors)
        raise not_kserve(where, what) from None


def read_statistics(client: Any, protocol: str, model: str, where: str, *, client_timeout: float | None = None) -> Any:
    """The inference statistics of ``model`` as a dict, as :func:`read_metadata` reads its metadata."""
    what = f"the statistics of model {model!r}"
    try:
        if protocol == "grpc":
            return client.get_inference_statistics(model, as_json=True, client_timeout=client_timeout)
        return client.get_inference_statistics(model)
    except ValueError:
        raise not_kserve(where, what) from None
