"""ONNX graphs as data: validated I/O and external data (``io``, ``external``), metadata, the
residual blocks found in any ResNet graph, our graph passes (``passes/``), fp16 conversion and the
numerical comparison every stage is verified with (``verify``). No torch, no inference session."""
