"""Where a model's answer changes, and why: one concern, three modules.

- :mod:`.compare`: two ONNX files (or a file and the PyTorch model it came from, :mod:`.eager`)
  block by block, naming the first block that diverges.
- :mod:`.sensitivity`: each residual block's cost in accuracy when quantized, and the INT8 model
  that keeps the costliest blocks float within an accuracy budget.

This floor sits above the benchmark (sensitivity measures the speed of what it chooses) and
below ``tune``; :mod:`resnet_deploy.graph.blocks` (finding the blocks in a graph) stays below
``quantize``, which keeps blocks float by name.
"""
