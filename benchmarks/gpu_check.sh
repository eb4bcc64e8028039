#!/usr/bin/env bash
# The GPU checks, run once on a lent H100/H200 machine (no network there): the CUDA tests of the
# suite, `resnet-deploy bench` on the CUDA provider and `resnet-deploy tune` on it. The image's
# python3 has torch, onnx, pytest and a CPU onnxruntime; onnxruntime-gpu is brought along.
#
# How onnxruntime-gpu arrives. A call carries at most 64 MiB and /tmp there is wiped when the
# machine goes back (about 30 s after a call ends), so the wheel travels in ~51 MB parts sent in
# back-to-back calls, each copied to /tmp/parts, and this script runs in the call of the last part:
#   here, once:  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#                  --implementation cp --platform manylinux_2_28_x86_64 -d /tmp/w onnxruntime-gpu==VERSION
#                mkdir /tmp/u && (cd /tmp/u && unzip -q /tmp/w/onnxruntime_gpu-*.whl)   # the unpacked wheel
#                tar -C /tmp/u -cJf /tmp/ort.tar.xz . && sha256sum /tmp/ort.tar.xz | cut -d' ' -f1 > /tmp/ort.sha256
#                mkdir -p /tmp/ortparts && split -b 51M -d -a 2 /tmp/ort.tar.xz /tmp/ortparts/part_
#                echo /.gpuparts/ >> .git/info/exclude
#   call k:      .gpuparts/ holds part_k alone (and ort.sha256); carry [".gpuparts"];
#                command: mkdir -p /tmp/parts && cp .gpuparts/* /tmp/parts/ && ls -l /tmp/parts
#   last call:   the same copy, then `&& bash benchmarks/gpu_check.sh` (timeout_s 600).
# The parts may also join into the .whl itself (split the wheel instead of the tar): both work.
# A gap of more than ~30 s between calls loses the parts: the script then says which are there.
#
# Budget: the whole script stops by BUDGET seconds (default 540, for a 600 s call); each step gets
# what is left, capped, and a step left less than it needs to finish is skipped and says so (bench256
# needs 180 s: the CPU baseline alone takes ~9 s a run at batch 256, so it rarely fits after the
# others; run STEPS=bench256 on its own for it). Results land in $OUT as each step ends, at most 8
# files (what a device call brings back):
#   versions.txt  pytest_gpu.txt  gpu_bench.json/.md (batch 1, 8, 32, merged as each batch ends)
#   gpu_bench256.json/.md  tune_profile.json  log.txt (every step's console output and timing)
# STEPS picks the checks, in this order (default all):
#   tests    the CUDA tests: Predictor (CUDA EP, CUDA graphs, fp16 + prefer_nhwc), the bench backends
#   bench    ResNet-50 at batch 1, 8, 32 on BENCH_ENGINES (default: the GPU engines but TensorRT,
#            whose libraries that image lacks and whose engine builds would not fit the budget)
#   tune     resnet-deploy tune on cuda,cpu at batch 1; Predictor.from_profile replayed
#   bench256 the same engines at batch 256 (throughput)
set -uo pipefail
START=$SECONDS
BUDGET=${BUDGET:-540}
STEPS=${STEPS-"tests bench tune bench256"}  # STEPS="" unpacks and prints the versions only
BENCH_ENGINES=${BENCH_ENGINES-pytorch-cuda,pytorch-cuda-fp16,pytorch-cuda-fp16-graph,cuda-fused,cuda-fp16,cuda-fp16-nhwc,cuda-fp16-nhwc-graph,cuda-fp32-nhwc-graph}
OUT=${OUT:-/tmp/gpu_out}
PARTS=${GPU_WHEEL_PARTS:-/tmp/parts}
WORK=/tmp/gpu_work
LOG="$OUT/log.txt"
mkdir -p "$OUT" "$WORK/site" "$WORK/res" "$WORK/tune" /tmp/rdcli
rm -f "$WORK"/res/* "$WORK"/tune/*  # a rerun on the same machine starts its results afresh
say() { echo "== $* [$((SECONDS - START))s]" | tee -a "$LOG"; }

# onnxruntime-gpu: unpack the joined parts (an xz tar of the unpacked wheel, or the wheel) once.
if [[ ! -f "$WORK/site/.unpacked" ]]; then
  if compgen -G "$PARTS/part_*" > /dev/null; then
    say "joining $(find "$PARTS" -name 'part_*' | wc -l) parts from $PARTS: $(cd "$PARTS" && echo part_*)"
    cat "$PARTS"/part_* > "$WORK/ort.archive"
    if [[ -f "$PARTS/ort.sha256" ]] && [[ "$(sha256sum "$WORK/ort.archive" | cut -d' ' -f1)" != "$(tr -d ' \n' < "$PARTS/ort.sha256")" ]]; then
      say "the joined parts do not match ort.sha256: a part is missing or cut short; stopping"
      exit 1
    fi
    python3 - "$WORK/ort.archive" "$WORK/site" <<'PY' 2>&1 | tee -a "$LOG" || exit 1
import sys, tarfile, zipfile
archive, site = sys.argv[1:]
with open(archive, "rb") as fh:
    magic = fh.read(6)
if magic.startswith(b"\xfd7zXZ"):
    with tarfile.open(archive, "r:xz") as tar:
        tar.extractall(site, filter="tar") if hasattr(tarfile, "tar_filter") else tar.extractall(site)
elif magic.startswith(b"PK"):
    zipfile.ZipFile(archive).extractall(site)  # a wheel: what pip --target would lay out
else:
    sys.exit(f"{archive}: neither an xz tar nor a wheel (starts with {magic!r})")
PY
    init=$(find "$WORK/site" -maxdepth 4 -path '*/onnxruntime/__init__.py' -print -quit)
    if [[ -z "$init" ]]; then
      say "no onnxruntime/__init__.py in the unpacked parts; stopping"
      exit 1
    fi
    echo "${init%/onnxruntime/__init__.py}" > "$WORK/site/.unpacked"
    rm -f "$WORK/ort.archive"
  else
    say "no parts in $PARTS: using the onnxruntime the image has"
    echo "" > "$WORK/site/.unpacked"
  fi
fi
ORT_SITE=$(cat "$WORK/site/.unpacked")
ln -sfn "$PWD/cli" /tmp/rdcli/resnet_deploy_cli
export PYTHONPATH="${ORT_SITE:+$ORT_SITE:}/tmp/rdcli:$PWD" PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, onnxruntime as o, onnx; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| onnxruntime', o.__version__, o.__file__, o.get_available_providers(), '| onnx', onnx.__version__)"
  python3 -c "import resnet_deploy.runtime as r; print('available providers:', r.available_providers())"
} 2>&1 | tee "$OUT/versions.txt"

has() { [[ " $STEPS " == *" $1 "* ]]; }
# step NAME CAP MIN FILE CMD...: run CMD with the time left (at most CAP s; skipped when under MIN s
# are left, which would not let it finish), its output shown and appended to FILE.
step() {
  local name=$1 cap=$2 min=$3 file=$4 t rc
  shift 4
  t=$((BUDGET - (SECONDS - START) - 10))
  ((t > cap)) && t=$cap
  if ((t < min)); then
    say "$name: skipped, ${t}s left of BUDGET=${BUDGET}s (it needs ${min}s)"
    return 0
  fi
  say "$name: start (timeout ${t}s)"
  timeout -k 10 "$t" "$@" 2>&1 | tee -a "$file"
  rc=${PIPESTATUS[0]}
  say "$name: exit $rc$( ((rc == 124 || rc == 137)) && echo ' (timed out)')"
  return 0
}
BENCH=(python3 -m resnet_deploy_cli.main bench --depth 50 --providers cuda --cache-dir /tmp/bcache)
[[ -n "$BENCH_ENGINES" ]] && BENCH+=(--engines "$BENCH_ENGINES")
merge_bench() {  # the per-batch results so far, as one JSON and one markdown in $OUT
  python3 - "$OUT/gpu_bench.json" "$WORK"/res/bench_b*.json <<'PY' >> "$LOG" 2>&1
import json, sys
out, parts = sys.argv[1], sys.argv[2:]
merged = None
for path in sorted(parts, key=lambda p: int(p.rsplit("_b", 1)[1].split(".")[0])):
    data = json.load(open(path))
    if merged is None:
        merged = data
    else:
        merged["results"] += data["results"]
        merged["options"]["batch_sizes"] += data["options"]["batch_sizes"]
if merged is not None:
    json.dump(merged, open(out, "w"), indent=1)
PY
  compgen -G "$WORK/res/bench_b*.md" > /dev/null || return 0
  for b in 1 8 32; do
    [[ -f "$WORK/res/bench_b$b.md" ]] && cat "$WORK/res/bench_b$b.md"
  done > "$OUT/gpu_bench.md"
}

if has tests; then
  step tests 180 30 "$OUT/pytest_gpu.txt" python3 -m pytest -q -p no:cacheprovider -rs \
    tests/runtime/test_runtime.py tests/bench/test_gpu_backends.py tests/runtime/test_openvino_runtime.py
fi
if has bench; then
  for b in 1 8 32; do
    step "bench b$b" 150 40 "$LOG" "${BENCH[@]}" --batch-size "$b" --json "$WORK/res/bench_b$b.json" \
      --markdown "$WORK/res/bench_b$b.md" --duration 2 --rounds 4
    merge_bench
  done
fi
if has tune; then
  step "export r50" 90 120 "$LOG" python3 -m resnet_deploy_cli.main export --depth 50 -o "$WORK/tune/r50.onnx"
  # The profile and the winner's model stay in $WORK (the model is over the size a call brings back).
  step tune 200 90 "$LOG" python3 -m resnet_deploy_cli.main tune "$WORK/tune/r50.onnx" -o "$WORK/tune/r50.profile.json" \
    --providers cuda,cpu --precision fp32,fp16 --duration 2 --rounds 3
  if [[ -f "$WORK/tune/r50.profile.json" ]]; then
    cp "$WORK/tune/r50.profile.json" "$OUT/tune_profile.json"
  else
    say "tune wrote no profile"
  fi
  [[ -f "$WORK/tune/r50.profile.json" ]] && step "from_profile" 60 20 "$LOG" python3 - "$WORK/tune/r50.profile.json" <<'PY'
import json, sys, time, numpy as np
from resnet_deploy.runtime import Predictor
profile = sys.argv[1]
x = np.random.default_rng(42).standard_normal((1, 3, 224, 224), dtype=np.float32)
with Predictor.from_profile(profile) as p:
    print("from_profile:", p.provider, p._config)
    for _ in range(20): p.run(x)
    t = []
    for _ in range(500):
        a = time.perf_counter(); p.run(x); t.append((time.perf_counter() - a) * 1e3)
print(f"from_profile p50 {np.median(t):.3f} ms (host copies included); tune measured {json.load(open(profile))['measured']['p50_ms']:.3f} ms")
PY
fi
if has bench256; then
  step bench256 200 180 "$LOG" "${BENCH[@]}" --batch-size 256 --json "$OUT/gpu_bench256.json" --markdown "$OUT/gpu_bench256.md" \
    --duration 2 --rounds 2 --warmup 2
fi
say "done; $OUT holds: $(cd "$OUT" && echo *)"
