"""An image-input model (``export --image-input``) fed by ``Predictor.predict``: what each run holds.

Its graph resizes the images as they are, so a run's memory follows the pixels it is given, not
the model's input size (issue 26 B.2: eight 4000x4000 PNGs stacked into one run peaked at 4.0 GB).
The real session is wrapped to record the shape of every input it receives.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from resnet_deploy.export.image_input import image_input_stage
from resnet_deploy.graph.io import load_onnx, save_onnx
from resnet_deploy.image_input import ImageInputSpec, preprocessing_for
from resnet_deploy.runtime import Predictor
from resnet_deploy import InputError
from resnet_deploy.runtime.raw_images import BATCH_PIXELS, run_within_budget

# A side just over half the budget: two such images together exceed it.
LARGE = math.isqrt(BATCH_PIXELS // 2) + 1
# Just over a third: two fit, three do not.
THIRD = math.isqrt(BATCH_PIXELS // 3) + 1


class _Recording:
    """The real onnxruntime session, recording the input shape of each run."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.shapes: list[tuple[int, ...]] = []

    def run(self, outputs: Any, feeds: dict[str, np.ndarray], *args: Any) -> Any:
        self.shapes.extend(tuple(a.shape) for a in feeds.values())
        return self.session.run(outputs, feeds, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


@pytest.fixture(scope="module")
def r20_image(resnet20_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = load_onnx(resnet20_onnx)
    with_input, _ = image_input_stage(model, ImageInputSpec(preprocessing_for(model), 0))
    out = tmp_path_factory.mktemp("image") / "r20_image.onnx"
    save_onnx(with_input, out)
    return out


# (sizes of the images given, in order; the images each run of the session receives)
RUNS = [
    pytest.param([(LARGE, LARGE)] * 4, [1, 1, 1, 1], id="large images run one at a time"),
    pytest.param([(THIRD, THIRD)] * 4, [2, 2], id="a third of the budget runs two at a time"),
    pytest.param([(64, 48)] * 5, [5], id="small images of one size share a run"),
    pytest.param([(64, 48), (64, 48), (40, 40), (64, 48)], [2, 1, 1], id="a new size starts a run"),
]


@pytest.mark.parametrize(("sizes", "runs"), RUNS)
def test_predict_bounds_the_pixels_of_each_run(r20_image: Path, tmp_path: Path, sizes: list[tuple[int, int]],
                                               runs: list[int]) -> None:
    rng = np.random.default_rng(0)
    files = []
    for i, (w, h) in enumerate(sizes):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(files[-1], compress_level=0)
    with Predictor(r20_image, provider="cpu") as predictor:
        recording = _Recording(predictor._execution._session)
        predictor._execution._session = recording
        results = predictor.predict(files, top_k=1, batch_size=16)
        singles = [predictor.predict(f, top_k=1)[0] for f in files]
    assert [s[0] for s in recording.shapes[: len(runs)]] == runs
    assert all(s[1] * s[2] * s[0] <= max(BATCH_PIXELS, s[1] * s[2]) for s in recording.shapes)
    assert [r[0].index for r in results] == [s[0].index for s in singles]  # rows back in the order given


# Requests Triton's batcher merged, as model.py hands them to run_within_budget: (each request's
# [N, H, W] in order; the images each call of run receives). Adversarial pass F3 (issue 26): 8
# requests of 3000x3000, each within the request bound, made one 2.6 GB run.
MERGED = [
    pytest.param([(4, LARGE, LARGE)], [1, 1, 1, 1], id="one request of large images runs one at a time"),
    pytest.param([(1, LARGE, LARGE)] * 4, [1, 1, 1, 1], id="merged large requests run one at a time"),
    pytest.param([(2, THIRD, THIRD), (1, THIRD, THIRD), (1, THIRD, THIRD)], [2, 2],
                 id="two thirds of the budget per run"),
    pytest.param([(2, 48, 64), (1, 40, 40), (3, 48, 64)], [5, 1], id="small requests of one size share a run"),
    pytest.param([(1, 0, 32)], [1], id="an image without pixels reaches run, which refuses it"),
]


@pytest.mark.parametrize(("requests", "runs"), MERGED)
def test_merged_requests_run_within_the_pixel_budget(requests: list[tuple[int, int, int]], runs: list[int]) -> None:
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8) for n, h, w in requests]
    calls: list[tuple[int, ...]] = []

    def run(batch: np.ndarray) -> np.ndarray:  # one row per image that names it: its size and its sum
        calls.append(batch.shape)
        return np.stack([[image.shape[0], image.shape[1], int(image.sum())] for image in batch])

    rows = run_within_budget(run, batches)
    assert [c[0] for c in calls] == runs
    assert all(n * h * w <= max(BATCH_PIXELS, h * w) for n, h, w, _ in calls)
    want = [[image.shape[0], image.shape[1], int(image.sum())] for batch in batches for image in batch]
    np.testing.assert_array_equal(rows, want)  # every request's rows, in the order given


def test_merged_requests_without_an_image_are_refused() -> None:
    with pytest.raises(InputError, match="empty batch"):
        run_within_budget(lambda batch: batch, [np.zeros((0, 8, 8, 3), np.uint8)])
