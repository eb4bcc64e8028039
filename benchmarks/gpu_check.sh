#!/usr/bin/env bash
# The GPU checks, run once on a lent H100/H200 machine (no network there): the CUDA tests of the
# suite and `resnet-deploy bench` on the CUDA provider. onnxruntime-gpu travels as a wheel in
# parts (GPU_WHEEL_PARTS, a folder of split pieces); the image's python3 has torch and onnx.
# STEPS picks the checks (default all; each fits a 10-minute call on its own):
#   tests    the CUDA tests of the suite
#   bench    ResNet-50 at batch 1, 8, 32 on every GPU engine (eager, eager fp16 + CUDA graph,
#            CUDA EP fp32/fp16, with prefer_nhwc and CUDA graphs, TensorRT when its libraries exist)
#   bench256 the same engines at batch 256 (throughput), GPU engines only besides the CPU baseline
#   tune     resnet-deploy tune on the CUDA provider at batch 1; Predictor.from_profile replayed
set -uo pipefail
STEPS=${STEPS:-"tests bench bench256 tune"}
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT" /tmp/site
PARTS=${GPU_WHEEL_PARTS:-/tmp/parts}
WHEEL=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
cat "$PARTS"/part_* > "$WHEEL"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$WHEEL" || exit 1
ln -sfn "$PWD/cli" /tmp/site/resnet_deploy_cli
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, onnxruntime as o, onnx; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| onnxruntime', o.__version__, o.get_available_providers(), '| onnx', onnx.__version__)"
  python3 -c "import resnet_deploy.runtime as r; print('available providers:', r.available_providers())"
} 2>&1 | tee "$OUT/versions.txt"
has() { [[ " $STEPS " == *" $1 "* ]]; }
if has tests; then
  timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_runtime.py tests/test_openvino_runtime.py -rs 2>&1 | tee "$OUT/pytest_gpu.txt" | tail -25
fi
if has bench; then
  timeout 400 python3 -m resnet_deploy_cli.main bench --depth 50 --batch-size 1,8,32 --providers cuda --duration 2 --rounds 4 \
    --cache-dir /tmp/bcache --json "$OUT/gpu_bench.json" --markdown "$OUT/gpu_bench.md" 2>&1 | tee "$OUT/bench_gpu.txt" | tail -40
fi
if has bench256; then
  timeout 500 python3 -m resnet_deploy_cli.main bench --depth 50 --batch-size 256 --providers cuda --duration 2 --rounds 2 --warmup 2 \
    --cache-dir /tmp/bcache --json "$OUT/gpu_bench256.json" --markdown "$OUT/gpu_bench256.md" 2>&1 | tee "$OUT/bench256_gpu.txt" | tail -30
fi
if has tune; then
  python3 -m resnet_deploy_cli.main export --depth 50 -o /tmp/r50.onnx > /dev/null 2>&1
  timeout 400 python3 -m resnet_deploy_cli.main tune /tmp/r50.onnx -o "$OUT/r50_gpu.profile.json" --providers cuda,cpu \
    --precision fp32,fp16 --duration 2 --rounds 3 2>&1 | tee "$OUT/tune_gpu.txt" | tail -30
  python3 - "$OUT/r50_gpu.profile.json" <<'PY' 2>&1 | tee -a "$OUT/tune_gpu.txt"
import json, sys, time, numpy as np
from resnet_deploy.runtime import Predictor
profile = sys.argv[1]
x = np.random.default_rng(42).standard_normal((1, 3, 224, 224), dtype=np.float32)
with Predictor.from_profile(profile) as p:
    for _ in range(20): p.run(x)
    t = []
    for _ in range(500):
        a = time.perf_counter(); p.run(x); t.append((time.perf_counter() - a) * 1e3)
print(f"from_profile p50 {np.median(t):.3f} ms (host copies included); tune measured {json.load(open(profile))['measured']['p50_ms']:.3f} ms")
PY
fi
