"""Lower precision, verified: static INT8 (``quantize``), what it is asked for (``options``), its
recipes (``recipes``) and data (``calibration``), how close it stays to fp32 (``fidelity``,
``holdout``), the blocks kept in float for an accuracy budget (``accuracy_aware``) and
``export --int8`` (``export_int8``). fp16 is a graph conversion (:mod:`resnet_deploy.graph.fp16`)."""
