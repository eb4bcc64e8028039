"""Lower precision, verified: static INT8 (``quantize``), its recipes (``recipes``) and its data
(``calibration``). fp16 is a graph conversion (:mod:`resnet_deploy.graph.fp16`)."""
