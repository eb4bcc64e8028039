"""Putting a model to work beyond one process: Triton model repositories and a local Triton server
(``triton/``), a static web page (``bundle/``), and offline jobs over many images (``batch/``)."""
