"""A static web page that classifies images in the browser: ``resnet-deploy bundle MODEL --web -o DIR``.

The model must take images as they are (``export --image-input``): the page decodes a chosen or
dropped JPEG/PNG with the browser's own decoder and hands the uint8 RGB pixels to onnxruntime-web
(WebAssembly with SIMD; threads where the page is cross-origin isolated), which resizes, crops and
normalises inside the graph. The folder written holds::

    index.html, app.js   the page (package data: resnet_deploy/data/web)
    serve.py             a standard-library server with the COOP/COEP headers threads need
    model.onnx | model.ort
    model.json           what the page reads: the file, its input and output, labels, preprocessing
    ort/                 onnxruntime-web's WebAssembly build: ort.wasm.min.mjs and the SIMD-threaded
                         .mjs/.wasm it loads (14 MB; the default entry point, ort.min.mjs, would also
                         fetch the 28 MB JSEP/WebGPU build, which a CPU page never runs)

What the bundle can choose, measured by ``benchmarks/image_input.py``: INT8 (the classifier
quantized to QDQ by :func:`~resnet_deploy.precision.quantize.quantize_file`, the preprocessing kept float),
onnxruntime's ORT format with its graph optimizations applied offline (``ort_format``), and the
number of threads. SIMD is not a choice: onnxruntime-web ships SIMD builds only (since 1.19).

The folder is built beside the target and moved into place when complete; an existing one is
replaced only with ``force``, swapped in one step (:mod:`resnet_deploy._atomic.folders`).

The headless-Chromium driver that checks a bundle is a test fixture (tests/webpage/), not part of
the product.

One module each: :mod:`.options` (what may be chosen, and its checks), :mod:`.assets` (the page
and onnxruntime-web's files), :mod:`.ort_format` (the ORT-format conversion, checked),
:mod:`.write` (the folder, built and moved into place).
"""

from __future__ import annotations

from .assets import ORT_WEB_FILES, ORT_WEB_VERSION, PAGE, WEB_EXAMPLE, find_ort_web
from .options import WebBundle, WebBundleOptions
from .ort_format import ORT_FORMAT_RTOL, to_ort_format
from .write import write_web_bundle

__all__ = [
    "WebBundleOptions", "WebBundle", "write_web_bundle", "find_ort_web", "to_ort_format", "ORT_WEB_FILES",
    "ORT_WEB_VERSION", "PAGE", "WEB_EXAMPLE", "ORT_FORMAT_RTOL",
]
