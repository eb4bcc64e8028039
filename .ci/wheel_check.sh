#!/usr/bin/env bash
# The package as a user gets it: a wheel built by `python -m build`, installed into a fresh venv
# outside the checkout, running export, predict, bundle --web (onnxruntime-web fetched with npm
# into a cache of its own) and --help from a folder that is not the checkout.
# Usage: .ci/wheel_check.sh WORKDIR   (from the repository root; it installs what it needs)
set -euo pipefail
work=$1
python3 -m venv "$work/build" && "$work/build/bin/pip" install -q build
"$work/build/bin/python" -m build --wheel --outdir "$work/dist" . > "$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
wheel=$(ls "$work"/dist/resnet_deploy-*.whl)
python3 -m venv "$work/wheel"
"$work/wheel/bin/pip" install -q torch==2.13.0 "$wheel[export]"
cd "$(mktemp -d "$work/outside.XXXX")"
export XDG_CACHE_HOME="$PWD/cache" PATH="$work/wheel/bin:$PATH"
resnet-deploy --help > /dev/null
resnet-deploy export --depth 20 --image-input -o r20_image.onnx > /dev/null
resnet-deploy predict r20_image.onnx "$("$work/wheel/bin/python" -c 'from resnet_deploy.preprocess import sample_image_path; print(sample_image_path())')" > /dev/null 2>&1
resnet-deploy bundle r20_image.onnx --web -o site > /dev/null
test -f site/index.html && test -f site/ort/ort.wasm.min.mjs && test -f site/model.json
echo "wheel check: $(basename "$wheel") exported, predicted and bundled outside the checkout"
