"""End-to-end cost per image of the image-input model, beside the float model with host
preprocessing, and the same file in Node.js and in a browser against native onnxruntime.

    python benchmarks/image_input.py [--depth 18] [--threads 2] [--runs 20] [--warmup 3] [--quick] [--out DIR]

One run, one photo (the shipped portrait, 512x600, as a JPEG file), batch 1, in this order:

1. Python, ``Predictor`` on onnxruntime's CPU provider, interleaved rounds: the image-input file
   fed decoded uint8 pixels against the float file fed by PIL preprocessing (``Preprocessing``),
   each with decoding counted (the file path given) and not counted (the decoded image given).
2. Node.js (examples/node: onnxruntime-node, jpeg-js): the image-input file, decoding counted and
   not.
3. The web page (``resnet-deploy bundle --web``) in headless Chromium, one page load per
   configuration: fp32 and INT8 QDQ, ONNX and ORT format (optimizations applied offline), 1 and
   ``--threads`` WebAssembly threads. Each is set against native onnxruntime (Python, the same
   file, the same threads, measured right after it) and against native fp32; its top-5 is
   checked against native onnxruntime's on the same file. SIMD is no choice: onnxruntime-web
   ships SIMD builds only.

Times are per image: the median (p50) and p90 of ``--runs`` timed runs after ``--warmup``. The
machine's CPU, core count and load average are recorded; on a shared machine the ratios are the
figures to read, not the milliseconds. Prints a table; ``--out DIR`` also writes
``DIR/<date>-image-input.json`` (flat records, one per measurement).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resnet_deploy import Predictor  # noqa: E402
from resnet_deploy.serving.bundle import WEB_EXAMPLE, WebBundleOptions, write_web_bundle  # noqa: E402
from tests.webpage.chromium import chromium_path, run_page  # noqa: E402 - the test bench drives the page
from tests.webpage.server import BundleServer  # noqa: E402
from resnet_deploy.export.exporter import ExportOptions, export_model  # noqa: E402
from resnet_deploy.image_input import ImageInputSpec, preprocessing_for  # noqa: E402
from resnet_deploy.export.image_input import image_input_stage, photo_variants  # noqa: E402
from resnet_deploy.graph.io import load_onnx, save_onnx  # noqa: E402
from resnet_deploy.preprocess.images import load_image  # noqa: E402
from resnet_deploy.preprocess.labels import sample_image_path

NODE_EXAMPLE = ROOT / "examples" / "node"
NODE_BENCH = r"""
const { createRequire } = require('module');
const [example, modelPath, imagePath, threads, runs, warmup] = process.argv.slice(2);
const load = createRequire(`${example}/classify.js`);
const ort = load('onnxruntime-node');
const { decode } = load('./classify.js');
(async () => {
  const session = await ort.InferenceSession.create(modelPath, {
    executionProviders: ['cpu'], intraOpNumThreads: Number(threads) });
  const name = session.inputNames[0];
  const decodeMs = [];
  const runMs = [];
  let logits;
  for (let i = 0; i < Number(warmup) + Number(runs); i++) {
    const t0 = process.hrtime.bigint();
    const image = decode(imagePath);
    const t1 = process.hrtime.bigint();
    const out = await session.run({ [name]: new ort.Tensor('uint8', image.data, [1, image.height, image.width, 3]) });
    const t2 = process.hrtime.bigint();
    logits = out[session.outputNames[0]].data;
    if (i >= Number(warmup)) { decodeMs.push(Number(t1 - t0) / 1e6); runMs.push(Number(t2 - t1) / 1e6); }
  }
  process.stdout.write(JSON.stringify({ decode_ms: decodeMs, run_ms: runMs, logits: Array.from(logits) }));
})().catch((err) => { process.stderr.write(`error: ${err.message}\n`); process.exit(1); });
"""


@dataclass
class Record:
    """One measurement: what ran, how, and its time per image in milliseconds."""

    engine: str  # python, node, web
    model: str  # image-input, float+PIL
    variant: str  # fp32-onnx, fp32-ort, int8-onnx, int8-ort
    threads: int
    decoding: bool  # decoding the JPEG counted in the time
    p50_ms: float
    p90_ms: float
    runs: int
    notes: dict[str, Any] = field(default_factory=dict)


def _stats(times_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(times_ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def _top5(logits: np.ndarray) -> list[int]:
    return [int(i) for i in np.argsort(-np.asarray(logits, np.float64), kind="stable")[:5]]


def python_side_by_side(float_path: Path, image_path: Path, photo: Path, threads: int, runs: int,
                        warmup: int) -> list[Record]:
    """Predictor on both files, decoding counted and not, in interleaved rounds."""
    decoded = load_image(photo)
    pixels = np.asarray(decoded.convert("RGB"))
    with Predictor(float_path, provider="cpu", threads=threads) as f, \
            Predictor(image_path, provider="cpu", threads=threads) as im:
        cases: dict[tuple[str, bool], Callable[[], object]] = {
            ("image-input", True): lambda: im.predict(photo),
            ("image-input", False): lambda: im.predict(pixels),
            ("float+PIL", True): lambda: f.predict(photo),
            ("float+PIL", False): lambda: f.predict(decoded),
        }
        times: dict[tuple[str, bool], list[float]] = {k: [] for k in cases}
        for i in range(warmup + runs):
            for key, call in cases.items():
                start = time.perf_counter()
                call()
                if i >= warmup:
                    times[key].append((time.perf_counter() - start) * 1e3)
    return [Record("python", model, "fp32-onnx", threads, decoding, *_stats(t), runs)
            for (model, decoding), t in times.items()]


def native_run_ms(model_file: Path, pixels: np.ndarray, threads: int, runs: int,
                  warmup: int) -> tuple[float, float, list[int]]:
    """Native onnxruntime (Python, CPU, default optimizations) on ``model_file``: run only."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: pixels[None]}
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        logits = session.run(None, feed)[0]
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return *_stats(times), _top5(logits[0])


def node_records(image_path: Path, photo: Path, threads: int, runs: int, warmup: int) -> list[Record]:
    if not (NODE_EXAMPLE / "node_modules" / "onnxruntime-node").is_dir():
        print("skipped Node.js: examples/node/node_modules is absent (npm ci --ignore-scripts there)", file=sys.stderr)
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".js", delete=False) as script:
        script.write(NODE_BENCH)
    try:
        out = subprocess.run(["node", script.name, str(NODE_EXAMPLE), str(image_path), str(photo),
                              str(threads), str(runs), str(warmup)],
                             capture_output=True, text=True, check=True, timeout=600)
    finally:
        os.unlink(script.name)
    found = json.loads(out.stdout)
    run, both = found["run_ms"], [a + b for a, b in zip(found["decode_ms"], found["run_ms"])]
    notes = {"top5": _top5(found["logits"]), "decode_p50_ms": statistics.median(found["decode_ms"]),
             "decoder": "jpeg-js"}
    return [Record("node", "image-input", "fp32-onnx", threads, False, *_stats(run), runs, notes),
            Record("node", "image-input", "fp32-onnx", threads, True, *_stats(both), runs, dict(notes))]


def web_records(image_path: Path, photo: Path, folder: Path, thread_counts: list[int], variants: list[str], runs: int,
                warmup: int) -> list[Record]:
    if chromium_path() is None or not (WEB_EXAMPLE / "node_modules" / "onnxruntime-web").is_dir():
        print("skipped the web page: Chromium or examples/web/node_modules is absent", file=sys.stderr)
        return []
    calibration = folder / "calibration"
    calibration.mkdir()
    for i, (_, p) in enumerate(photo_variants()):
        p.save(calibration / f"{i:02d}.png")
    pixels = np.asarray(load_image(photo).convert("RGB"))
    records = []
    for variant in variants:
        precision, fmt = variant.split("-")
        options = WebBundleOptions(int8=precision == "int8", calibration=calibration if precision == "int8" else None,
                                   ort_format=fmt == "ort")
        bundle = write_web_bundle(image_path, folder / variant, options)
        (bundle.folder / photo.name).write_bytes(photo.read_bytes())
        for threads in thread_counts:
            with BundleServer(bundle.folder) as server:
                report = run_page(server, f"images={photo.name}&threads={threads}&bench={runs}&warmup={warmup}",
                                  timeout=900)
            if not report["ok"]:
                raise RuntimeError(f"the page failed ({variant}, {threads} threads): {report['error']}")
            native_p50, native_p90, native_top5 = native_run_ms(bundle.model, pixels, threads, runs, warmup)
            timings = report["bench"]
            top5 = [p["index"] for p in report["results"][0]["top_k"]]
            notes = {"top5": top5, "top5_equal_native": top5 == native_top5, "native_same_file_p50_ms": native_p50,
                     "session_ms": report["environment"]["session_ms"],
                     "decode_p50_ms": statistics.median(timings["decode_ms"]),
                     "decoder": "Chromium (createImageBitmap)", "model_bytes": bundle.model.stat().st_size,
                     "onnxruntime_web": report["environment"]["onnxruntime_web"],
                     "cross_origin_isolated": report["environment"]["cross_origin_isolated"]}
            both = [a + b for a, b in zip(timings["decode_ms"], timings["run_ms"])]
            records.append(Record("web", "image-input", variant, threads, False,
                                  *_stats(timings["run_ms"]), runs, notes))
            records.append(Record("web", "image-input", variant, threads, True, *_stats(both), runs, dict(notes)))
            records.append(Record("python", "image-input", variant, threads, False, native_p50, native_p90, runs,
                                  {"top5": native_top5,
                                   "what": "native onnxruntime on the bundle's file, measured after the page"}))
    return records


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip()
                  for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                  if line.startswith("Model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version()}


def print_table(records: list[Record], fp32_native: dict[int, float]) -> None:
    print(f"{'engine':7} {'model':12} {'variant':10} {'thr':>3} {'decode':>6} {'p50 ms':>8} {'p90 ms':>8}  "
          "vs native fp32, same threads")
    for r in records:
        base = fp32_native.get(r.threads)
        ratio = f"{r.p50_ms / base:5.2f}x" if base and not r.decoding and r.model == "image-input" else ""
        same = r.notes.get("native_same_file_p50_ms")
        if same and not r.decoding:
            ratio += (f"   (same file natively {same:.1f} ms: {r.p50_ms / same:.2f}x; "
                      f"top-5 equal: {r.notes['top5_equal_native']})")
        print(f"{r.engine:7} {r.model:12} {r.variant:10} {r.threads:>3} {'yes' if r.decoding else 'no':>6} "
              f"{r.p50_ms:8.1f} {r.p90_ms:8.1f}  {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=18, help="ResNet depth (random init: timing only)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads of every engine (the web page also runs 1)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per configuration")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="a check that everything runs: 3 runs, fp32 and int8-ort pages only")
    parser.add_argument("--out", type=Path, default=None, help="write <date>-image-input.json in this folder")
    args = parser.parse_args()
    runs, warmup = (3, 1) if args.quick else (args.runs, args.warmup)
    variants = ["fp32-onnx", "int8-ort"] if args.quick else ["fp32-onnx", "fp32-ort", "int8-onnx", "int8-ort"]
    thread_counts = sorted({1, args.threads})
    before = machine()
    with tempfile.TemporaryDirectory(prefix="image-input-bench-") as tmp:
        folder = Path(tmp)
        float_path = folder / f"resnet{args.depth}.onnx"
        export_model(ExportOptions(f"resnet{args.depth}"), float_path)
        model = load_onnx(float_path)
        image_path = folder / f"resnet{args.depth}_image.onnx"
        save_onnx(image_input_stage(model, ImageInputSpec(preprocessing_for(model)))[0], image_path)
        photo = folder / "photo.jpg"
        photo.write_bytes(sample_image_path().read_bytes())
        records = python_side_by_side(float_path, image_path, photo, args.threads, runs, warmup)
        pixels = np.asarray(load_image(photo).convert("RGB"))
        fp32_native = {t: native_run_ms(image_path, pixels, t, runs, warmup)[0] for t in thread_counts}
        records += node_records(image_path, photo, args.threads, runs, warmup)
        records += web_records(image_path, photo, folder, thread_counts, variants, runs, warmup)
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "machine": before,
              "load_average_after": os.getloadavg(), "model": f"resnet{args.depth} (random init)",
              "photo": "grace_hopper.jpg 512x600", "native_fp32_run_p50_ms": fp32_native,
              "records": [asdict(r) for r in records]}
    print(f"{before['cpu']}, {before['cores']} cores, load average {before['load_average'][0]:.2f} -> "
          f"{os.getloadavg()[0]:.2f}")
    print_table(records, fp32_native)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{datetime.date.today().isoformat()}-image-input.json"
        path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
