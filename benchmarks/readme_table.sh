#!/usr/bin/env bash
# Reproduce docs/performance.md's table: ResNet-18/50/101 at batch 1, 8 and 32, every engine
# available here, each measured in its own process. Writes benchmarks/results/<date>-<model>.{json,md,png}.
# Run on an otherwise idle machine: about 20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=$(date +%Y-%m-%d)
mkdir -p benchmarks/results
for depth in 18 50 101; do
  resnet-deploy bench --depth "$depth" --batch-size 1,8,32 --duration "${DURATION:-2}" --warmup "${WARMUP:-3}" --peak \
    --json "benchmarks/results/$stamp-resnet$depth.json" \
    --markdown "benchmarks/results/$stamp-resnet$depth.md" \
    --plot "benchmarks/results/$stamp-resnet$depth.png"
done
