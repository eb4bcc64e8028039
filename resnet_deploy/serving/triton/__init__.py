"""Triton Inference Server: the model repository ``resnet-deploy triton`` writes, and a real
server to load it (``resnet-deploy serve``, ``bench --url``).

- :mod:`.options`: :class:`TritonOptions` and :class:`TritonEntry`, with their bounds.
- :mod:`.pbtxt`: ``config.pbtxt`` as structured data, escaped by construction.
- :mod:`.config`: the ``ModelConfig`` of an ONNX file (names, types, dims, batching, backends).
- :mod:`.repository`: writing an entry atomically; Python-backend entries that serve a profile.
- :mod:`.tuned`: a deployment profile as an entry's options (``triton --profile``, ``serve --profile``).
- :mod:`.server`: Triton's own ``tritonserver`` from the ``serve`` extra (imported on demand);
  :mod:`.wheel` lays out what the wheel ships, :mod:`.process` checks addresses and ports,
  :mod:`.log` reads what the server said, :mod:`.leftovers` removes what a run cut short left.
"""

from .config import batching, build_config, render_config
from .options import TRITON_BACKENDS, TRITON_PROVIDERS, TritonEntry, TritonOptions
from .repository import PYTHON_MODEL, profile_backend, write_triton_repository
from .tuned import TunedEntry, options_from_profile

__all__ = ["TritonOptions", "TritonEntry", "write_triton_repository", "render_config", "build_config", "batching",
           "profile_backend", "options_from_profile", "TunedEntry", "TRITON_PROVIDERS", "TRITON_BACKENDS",
           "PYTHON_MODEL"]
