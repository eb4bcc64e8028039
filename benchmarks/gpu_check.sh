#!/usr/bin/env bash
# The GPU checks, run once on a lent H100/H200 machine (no network there): the CUDA tests of the
# suite and `resnet-deploy bench` on the CUDA provider. onnxruntime-gpu travels as a wheel in
# parts (GPU_WHEEL_PARTS, a folder of split pieces); the image's python3 has torch and onnx.
set -uo pipefail
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
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_runtime.py -rs 2>&1 | tee "$OUT/pytest_gpu.txt" | tail -25
timeout 300 python3 -m resnet_deploy_cli.main bench --depth 50 --batch-size 1,8,32 --providers cuda --duration 2 \
  --cache-dir /tmp/bcache --json "$OUT/gpu_bench.json" --markdown "$OUT/gpu_bench.md" 2>&1 | tee "$OUT/bench_gpu.txt" | tail -30
