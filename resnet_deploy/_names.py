"""Names several floors share, defined once: the OpenVINO runtime's backend name (a profile's
``backend``, a benchmark engine's, ``Predictor.backend``) and the rule for a Triton model's name
(an entry we write, a served model ``bench --url`` asks for)."""

from __future__ import annotations

import re

__all__ = ["OPENVINO_RUNTIME", "TRITON_MODEL_NAME"]

OPENVINO_RUNTIME = "openvino-runtime"
TRITON_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
