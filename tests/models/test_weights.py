"""Checkpoints: safe loading, common wrappers, strict matching with precise messages."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import resnet_deploy as rd
from resnet_deploy.models.weights import load_state_dict


@pytest.fixture
def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return rd.create_model("resnet20").state_dict()


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.ones(1, 3, 32, 32))


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model", "module_prefix"])
def test_pth_wrappers_load(tmp_path: Path, state: dict, wrap: str) -> None:
    payload: object = state
    if wrap == "state_dict":
        payload = {"state_dict": state, "epoch": 3}
    elif wrap == "model":
        payload = {"model": state, "optimizer": {"lr": 0.1}}
    elif wrap == "module_prefix":
        payload = {f"module.{k}": v for k, v in state.items()}
    path = tmp_path / "w.pth"
    torch.save(payload, path)
    model = rd.create_model("resnet20", weights=path)
    reference = rd.create_model("resnet20")
    reference.load_state_dict(state)
    assert torch.equal(_logits(model), _logits(reference))


def test_safetensors_loads(tmp_path: Path, state: dict) -> None:
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    assert torch.equal(rd.create_model("resnet20", weights=path).conv1.weight, state["conv1.weight"])


def test_missing_num_batches_tracked_is_accepted(tmp_path: Path, state: dict) -> None:
    path = tmp_path / "w.pth"
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path)
    rd.create_model("resnet20", weights=path)


class _Payload:
    marker = ""

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _Payload.marker = str(marker)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"conv1.weight": _Payload()}, fh)
    with pytest.raises(rd.WeightsError, match="would run code"):
        load_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, match",
    [(b"", "is empty"), (b"\x80\x04garbage-not-a-checkpoint", "refused|corrupt"), (None, "corrupt or truncated")],
)
def test_broken_files(tmp_path: Path, state: dict, content: bytes | None, match: str) -> None:
    path = tmp_path / "w.pth"
    if content is None:  # a real checkpoint cut in half
        torch.save(state, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(rd.WeightsError, match=match):
        load_state_dict(path)


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(rd.WeightsError, match="not found"):
        load_state_dict(tmp_path / "nope.pth")
    other = tmp_path / "w.txt"
    other.write_text("x")
    with pytest.raises(rd.WeightsError, match="unsupported checkpoint type"):
        load_state_dict(other)


def test_corrupt_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(rd.WeightsError, match="not a valid safetensors"):
        load_state_dict(path)


def test_mismatch_names_missing_unexpected_and_misshaped(tmp_path: Path, state: dict) -> None:
    bad = dict(state)
    del bad["fc.bias"]
    bad["extra.weight"] = torch.zeros(1)
    bad["conv1.weight"] = torch.zeros(8, 3, 3, 3)
    path = tmp_path / "w.pth"
    torch.save(bad, path)
    with pytest.raises(rd.WeightsError) as info:
        rd.create_model("resnet20", weights=path)
    message = str(info.value)
    assert "missing keys: fc.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "conv1.weight (8, 3, 3, 3) vs (16, 3, 3, 3)" in message


def test_non_tensor_entries_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save({"conv1.weight": [1, 2, 3]}, path)
    with pytest.raises(rd.WeightsError, match="not a tensor"):
        load_state_dict(path)


def test_random_checkpoints_are_typed_errors(tmp_path: Path) -> None:
    """Random bytes as a checkpoint: always a WeightsError naming the file (6% of them used to end
    in an untyped IndexError from the unpickler)."""
    path = tmp_path / "random.pth"
    for seed in range(300):
        path.write_bytes(np.random.default_rng(seed).bytes(4096))
        with pytest.raises(rd.WeightsError, match="random.pth"):
            load_state_dict(path)
