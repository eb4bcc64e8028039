#!/usr/bin/env bash
# The OpenVINO EP checks, run on a lent machine whose Intel CPU the plugin supports (the plugin
# finds no device on AMD CPUs). The wheel travels in .ovwhl/; the image has onnxruntime (CPU).
set -uo pipefail
OUT=${OUT:-/tmp/ov_out}
mkdir -p "$OUT" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .ovwhl/*.whl || exit 1
ln -sfn "$PWD/cli" /tmp/site/resnet_deploy_cli
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 -c "import onnxruntime as o, resnet_deploy.runtime as r; print('onnxruntime', o.__version__, 'available:', r.available_providers())" 2>&1 | tee "$OUT/ov_versions.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/runtime/test_runtime.py -k openvino -rs -s 2>&1 | tee "$OUT/ov_pytest.txt" | tail -8
timeout 200 python3 -m resnet_deploy_cli.main bench --depth 50 --batch-size 1 --threads 2 --duration 2 --providers openvino \
  --cache-dir /tmp/bcache --json "$OUT/ov_bench.json" --markdown "$OUT/ov_bench.md" 2>&1 | tail -4
cat "$OUT/ov_bench.md"
