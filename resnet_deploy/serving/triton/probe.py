"""What a Triton server answers over HTTP/REST, asked with the standard library alone: the status
of a path, and the ``--id`` of the server on a port (readiness is checked against both)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

__all__ = ["http_status", "answering_id"]


def http_status(http: str, path: str) -> int | None:
    """The HTTP status ``http`` (``host:port``) answers for ``path``; None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{http}{path}", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def answering_id(http: str) -> str | None:
    """The ``--id`` of the server that answers on ``http`` (``host:port``)."""
    try:
        with urllib.request.urlopen(f"http://{http}/v2", timeout=2) as response:
            return str(json.loads(response.read()).get("name"))
    except (OSError, ValueError, AttributeError):
        return None
