"""The choices of an INT8 quantization: the calibration methods, the recipes of onnxruntime's
``quantize_static`` (format, integer types, per-channel scales, which ops), measured for speed,
and the CPU class a file is made for (``--target-cpu``), which decides the weights' range."""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import InputError
from .._machine import int8_kernels

__all__ = ["QuantRecipe", "RECIPES", "DEFAULT_RECIPE", "CALIBRATION_METHODS", "TARGET_CPUS", "target_kernels"]

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# ``auto``: this machine's class; ``vnni``: CPUs with VNNI or AMX (8-bit weights); ``any``: every
# CPU, AVX2-only included (7-bit weights, onnxruntime's reduce_range).
TARGET_CPUS = ("auto", "vnni", "any")


def target_kernels(target_cpu: str) -> str:
    """The INT8 kernels (``vnni`` or ``any``, :data:`resnet_deploy._machine.INT8_KERNELS`) a file
    made for ``target_cpu`` needs: ``auto`` is this machine's class.

    Without VNNI, U8S8 saturates in int16 (VPMADDUBSW adds two u8 x s8 products: up to 2 x 255 x
    127 = 64770 > 32767); 7-bit weights keep the pair within 2 x 255 x 63 = 32130, exact on every
    class. Measured on the digits ResNet-20 (docs/performance.md, "INT8 on every CPU class")."""
    if target_cpu not in TARGET_CPUS:
        raise InputError(f"unknown target CPU {target_cpu!r}; expected one of {', '.join(TARGET_CPUS)}")
    return int8_kernels() if target_cpu == "auto" else target_cpu


@dataclass(frozen=True)
class QuantRecipe:
    """The choices of onnxruntime's ``quantize_static`` that decide INT8 speed on a CPU.

    ``fmt``: ``qdq`` (QuantizeLinear/DequantizeLinear pairs around float ops: portable, read by
    onnxruntime, OpenVINO and TensorRT) or ``qoperator`` (QLinearConv...: onnxruntime only).
    ``activations``/``weights``: ``u8`` or ``s8``. ``all_ops``: quantize every op onnxruntime
    can (the residual Add included), or only Conv and Gemm.
    """

    fmt: str = "qdq"
    activations: str = "u8"
    weights: str = "s8"
    per_channel: bool = True
    all_ops: bool = True

    def __post_init__(self) -> None:
        if self.fmt not in ("qdq", "qoperator"):
            raise InputError(f"unknown quantization format {self.fmt!r}; expected qdq or qoperator")
        for kind in (self.activations, self.weights):
            if kind not in ("u8", "s8"):
                raise InputError(f"unknown integer type {kind!r}; expected u8 or s8")

    def describe(self) -> str:
        return (f"{self.fmt.upper()} {self.activations.upper()}{self.weights.upper()}, "
                f"{'per-channel' if self.per_channel else 'per-tensor'}, "
                f"{'all ops' if self.all_ops else 'Conv/Gemm only'}")


# Measured on ResNet-50, batch 1, 2 threads of an AMD EPYC with AVX-512 VNNI (benchmarks/
# int8_recipes.py; docs/performance.md, "INT8 recipes"): the default was fastest on onnxruntime (12.6 ms;
# per-tensor 13.2, QOperator 13.4, Conv/Gemm only 14.8, S8S8 30.6: VNNI multiplies unsigned by
# signed bytes) and runs as fast as any other on the OpenVINO runtime (11.6 ms). Held-out
# accuracy on the digits model was within 0.25 points of fp32 for every recipe.
RECIPES: dict[str, QuantRecipe] = {
    "qdq-u8s8": QuantRecipe(),
    "qdq-u8s8-per-tensor": QuantRecipe(per_channel=False),
    "qdq-s8s8": QuantRecipe(activations="s8"),
    "qdq-u8s8-conv-only": QuantRecipe(all_ops=False),
    "qoperator-u8s8": QuantRecipe(fmt="qoperator"),
    "qoperator-u8s8-conv-only": QuantRecipe(fmt="qoperator", all_ops=False),
}
DEFAULT_RECIPE = RECIPES["qdq-u8s8"]
