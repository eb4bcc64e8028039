"""Loading checkpoints safely and strictly.

Pickle checkpoints are only ever read with ``torch.load(weights_only=True)``: a file that would
run code when unpickled is refused without running it. ``.safetensors`` files hold no code at all.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from .._errors import WeightsError, first_line

__all__ = ["load_state_dict", "apply_state_dict", "PICKLE_SUFFIXES", "SAFETENSORS_SUFFIXES"]

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SAFETENSORS_SUFFIXES = (".safetensors",)
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
_OPTIONAL_KEYS_SUFFIX = "num_batches_tracked"  # absent from some timm/older checkpoints; unused in eval


def _read_file(path: Path) -> object:
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise WeightsError(f"checkpoint is empty: {path}")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"not a valid safetensors file: {path} ({first_line(exc)})") from exc
    if suffix in PICKLE_SUFFIXES:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "GLOBAL" not in str(exc) and not _pickle_or_zip(path):
                # A text file or zeros: the safe unpickler's refusal is no sign of code in it.
                raise WeightsError(f"not a checkpoint: {path} is neither torch.save's zip format nor a pickle "
                                   "(a corrupt file, or another kind of file)") from exc
            # weights_only=True refuses any global outside torch's allow-list before calling it.
            raise WeightsError(
                f"refused to load {path}: it holds objects that would run code when unpickled "
                "(only tensors and plain containers are accepted)"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - garbage makes the unpickler fail in any way
            # (6% of random 4 kB files end in an IndexError): every one is a corrupt file.
            raise WeightsError(f"corrupt or truncated checkpoint: {path} "
                               f"({type(exc).__name__}: {first_line(exc, 160)})") from exc
    accepted = ", ".join(PICKLE_SUFFIXES + SAFETENSORS_SUFFIXES)
    raise WeightsError(f"unsupported checkpoint type {suffix or '(none)'!r}: {path}; expected {accepted}")


def _pickle_or_zip(path: Path) -> bool:
    """The file starts as torch.save's zip archive or a pickle of protocol 2 or later does."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head.startswith((b"PK\x03\x04", b"\x80"))


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Accept a bare state_dict or the common wrappers, and strip DataParallel's ``module.``."""
    for _ in range(3):
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is not None and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = inner
                continue
        break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"no state_dict found in {path}: expected a mapping of names to tensors")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"no state_dict found in {path}: entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        problem = _not_dense(value)
        if problem:
            raise WeightsError(f"checkpoint {path}: entry {key!r} is {problem}; expected plain dense tensors")
        state[key.removeprefix("module.")] = value
    return state


def _not_dense(tensor: torch.Tensor) -> str | None:
    """What keeps ``tensor`` from being copied into a model's parameter, if anything.

    ``load_state_dict`` fails on sparse, quantized and meta tensors with an untyped RuntimeError,
    and silently drops the imaginary part of a complex one.
    """
    if tensor.layout != torch.strided:
        return f"a sparse tensor ({tensor.layout}; save tensor.to_dense())"
    if tensor.is_quantized:
        return f"a quantized tensor ({tensor.dtype}; save tensor.dequantize())"
    if tensor.is_meta:
        return "a meta tensor (a shape without data)"
    if tensor.is_complex():
        return f"a complex tensor ({tensor.dtype})"
    return None


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict, safely."""
    path = Path(path)
    return _unwrap(_read_file(path), path)


def _describe(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def apply_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Load ``state`` into ``model`` strictly, naming every missing, unexpected and mis-shaped key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(_OPTIONAL_KEYS_SUFFIX)]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped (checkpoint vs model): {_describe(misshaped)}")
    if problems:
        raise WeightsError(f"checkpoint {source} does not match the model; " + "; ".join(problems))
    filled = dict(state)
    for k in expected:
        filled.setdefault(k, expected[k])  # optional buffers keep their defaults
    model.load_state_dict(filled, strict=True)
