"""``bench --url``: what Triton's statistics say about the timed rounds of a served engine.

The server counts, per model, the requests it completed and the batches it ran, with the
nanoseconds they spent queued and computing (``/v2/models/NAME/stats``, gRPC's
``ModelStatistics``). Read before and after each timed round, the differences summed over the
rounds give the mean queue and compute time per request those rounds caused, and the mean batch
the dynamic batcher formed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ServerTimes"]


@dataclass
class ServerTimes:
    """Cumulative nanoseconds and counts from Triton's statistics for one model."""

    requests: int = 0
    executions: int = 0
    queue_ns: int = 0
    compute_ns: int = 0

    @classmethod
    def from_statistics(cls, data: dict[str, Any]) -> "ServerTimes":
        """From the statistics of one model as JSON (tritonclient's ``get_inference_statistics``),
        checked to hold ``model_stats`` with its ``inference_stats`` (``served_replies.read_statistics``).
        A duration gRPC's JSON left out for being zero counts 0."""
        model = data["model_stats"][0]
        inference = model["inference_stats"]

        def ns(key: str) -> int:
            return int(inference.get(key, {}).get("ns", 0))

        return cls(int(inference.get("success", {}).get("count", 0)), int(model.get("execution_count", 0)),
                   ns("queue"), ns("compute_input") + ns("compute_infer") + ns("compute_output"))

    def minus(self, other: "ServerTimes") -> "ServerTimes":
        return ServerTimes(self.requests - other.requests, self.executions - other.executions,
                           self.queue_ns - other.queue_ns, self.compute_ns - other.compute_ns)

    def plus(self, other: "ServerTimes") -> "ServerTimes":
        return ServerTimes(self.requests + other.requests, self.executions + other.executions,
                           self.queue_ns + other.queue_ns, self.compute_ns + other.compute_ns)

    def per_request(self) -> dict[str, float | None]:
        """Mean queue and compute ms per request, and the mean batch Triton formed (None without requests)."""
        if self.requests <= 0:
            return {"server_queue_ms": None, "server_compute_ms": None, "server_batch": None}
        return {"server_queue_ms": self.queue_ns / self.requests / 1e6,
                "server_compute_ms": self.compute_ns / self.requests / 1e6,
                "server_batch": self.requests / self.executions if self.executions else None}
