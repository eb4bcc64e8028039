"""Where a model's answer changes, and why.

- :mod:`.compare`: two ONNX files (or a file and the PyTorch model it came from, :mod:`.eager`)
  block by block, naming the first block that diverges.
- :mod:`.sensitivity`: each residual block's cost in accuracy when quantized alone (the model that
  keeps the costliest blocks float is made in :mod:`resnet_deploy.precision.accuracy_aware`).
- :mod:`.speed_cost`: what those float blocks cost, timed by the benchmark.
- :mod:`.int8`: ``quantize``'s one entry point, which reaches all of the above.

This floor sits above the benchmark (the speed cost is its measurement) and below ``tune``;
:mod:`resnet_deploy.graph.blocks` (finding the blocks in a graph) stays below ``quantize``, which
keeps blocks float by name.
"""
