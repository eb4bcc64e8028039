"""Shared fixtures: small real models exported once per session.

torch is imported inside the fixtures and helpers that need it: ``tests/test_no_torch.py`` runs
under this conftest in the runtime install, which has no torch.
"""

from __future__ import annotations

import io
import signal
import warnings
from pathlib import Path
from typing import Any
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    import torch

# A suite started in the background (`.ci/run &` from a script, nohup) inherits SIGINT ignored,
# and so would every command a test starts: those commands rightly keep ignoring it, so the tests
# that send Ctrl-C would see it shrugged off. The suite's commands get the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def legacy_export(model: torch.nn.Module, image_size: int, path: Path, *, input_name: str = "x") -> Path:
    """A 'foreign' ONNX file: the TorchScript exporter with constant folding off, as many
    torchvision users produce (BatchNormalization and Identity nodes left in)."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(1, 3, image_size, image_size),),
            buf,
            dynamo=False,
            do_constant_folding=False,
            input_names=[input_name],
            output_names=["y"],
            opset_version=17,
            dynamic_axes={input_name: {0: "n"}, "y": {0: "n"}},
        )
    path.write_bytes(buf.getvalue())
    return path


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give BatchNorm layers non-trivial statistics so folding is really exercised."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    return model.eval()


@pytest.fixture(scope="session")
def resnet20_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from resnet_deploy.export.exporter import ExportOptions, export_model

    path = tmp_path_factory.mktemp("export") / "resnet20.onnx"
    export_model(ExportOptions("resnet20"), path)
    return path


@pytest.fixture(scope="session")
def resnet18_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from resnet_deploy.export.exporter import ExportOptions, export_model

    path = tmp_path_factory.mktemp("export") / "resnet18.onnx"
    export_model(ExportOptions("resnet18"), path)
    return path


@pytest.fixture(scope="session")
def resnet20_features_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A features file (export --features --normalize): unit-length embeddings [N, 64] out."""
    from resnet_deploy.export.exporter import ExportOptions, export_model

    path = tmp_path_factory.mktemp("export") / "resnet20_features.onnx"
    export_model(ExportOptions("resnet20", features=True, normalize=True), path)
    return path


@pytest.fixture(scope="session")
def digits_trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """ResNet-20 trained on the digits once per session (tests/_digits.py: seeded, so every user
    sees the same net), its checkpoint and its fp32 export; the data splits beside them. Shared
    by the INT8, compare and tune tests, which write only into folders of their own."""
    import torch

    from resnet_deploy.export.exporter import ExportOptions, export_model

    from ._digits import IMAGE_SIZE, digits, train_resnet20

    folder = tmp_path_factory.mktemp("digits-trained")
    x_train, y_train, x_test, y_test = digits()
    ckpt = folder / "digits.pth"
    torch.save(train_resnet20(x_train, y_train).state_dict(), ckpt)
    fp32 = folder / "digits.onnx"
    export_model(ExportOptions("resnet20", weights=ckpt, image_size=IMAGE_SIZE), fp32)
    return {"ckpt": ckpt, "fp32": fp32, "x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


@pytest.fixture(scope="session")
def sample_image() -> Path:
    from resnet_deploy.preprocess.labels import sample_image_path

    return sample_image_path()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
