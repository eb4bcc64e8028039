"""Offline throughput: ``resnet-deploy batch``'s local engine against a plain loop and the
inference bound, on JPEGs made from the shipped photo (issue 25, section 5).

    python benchmarks/batch.py [--depth 18 50] [--images 2000] [--rss-images 20000] [--batch-size 16] [--out DIR]

Per model, one fresh process per configuration, in this order:

- ``local``: :func:`resnet_deploy.serving.batch.run_batch` with its defaults (decode workers plus
  inference threads = the cores), Parquet out;
- ``plain loop``: one process, PIL decode + preprocess (``Predictor.preprocess``) +
  ``Predictor.run`` in batches of ``--batch-size``, top-5 to Parquet, the session on every core;
- ``inference bound``: ``Predictor.run`` alone on ready tensors (64 distinct images preprocessed
  beforehand, cycled), batches of ``--batch-size``, every core: what the engine would reach if
  decoding cost nothing;
- ``local xN`` with ``--rss-images N``: the local engine over N paths (hard links to the set), for
  its peak memory against the first run's.

- ``ray``: the same job with ``--engine ray`` on a local Ray of this machine's cores, run by
  ``--ray-python`` (an environment with the ``ray`` extra; skipped without one).

Add an engine to :data:`ENGINES` and it is measured the same way.

Figures: images/s after the first result (start-up removed); CPU-seconds per image over the same
span, summed over the process and its children (psutil, read in the child at the first and the
last result); start-up, from launching the process to its first result; peak RSS, the largest sum
of RSS over the process tree, sampled every 20 ms by the parent (shared pages count once per
process), with the child's own high-water mark beside it as an independent reading (``VmHWM``
of /proc/self/status: unlike ``ru_maxrss``, which survives ``fork`` and ``execve`` and so reads
this script's own peak, it starts again with the child's address space). Each figure is
one run on a machine that may be busy: read the ratios, and rerun before quoting.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resnet_deploy import Predictor  # noqa: E402
from resnet_deploy._machine import cpu_flags, machine  # noqa: E402
from resnet_deploy.preprocess.labels import sample_image_path  # noqa: E402


class Marks:
    """Time and CPU (this process and its children, live or waited for) at the first and last result."""

    def __init__(self) -> None:
        self.first: tuple[float, float, int] | None = None
        self.last: tuple[float, float, int] = (0.0, 0.0, 0)

    @staticmethod
    def _cpu() -> float:
        me = psutil.Process()
        t = me.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in me.children(recursive=True):
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.NoSuchProcess:
                pass
        return total

    def result(self, images: int) -> None:
        mark = (time.time(), self._cpu(), images)
        if self.first is None:
            self.first = mark
        self.last = mark


def run_local(model: Path, paths: list[str], out: Path, batch_size: int, marks: Marks) -> None:
    from resnet_deploy.serving.batch import BatchOptions, run_batch

    listing = out.parent / "inputs.txt"
    listing.write_text("".join(p + "\n" for p in paths))
    run_batch(BatchOptions((f"@{listing}",), out, model=model, batch_size=batch_size),
              progress=lambda p: p.done and marks.result(p.done))


def run_ray(model: Path, paths: list[str], out: Path, batch_size: int, marks: Marks) -> None:
    from resnet_deploy.serving.batch import BatchOptions, run_batch

    listing = out.parent / "inputs.txt"
    listing.write_text("".join(p + "\n" for p in paths))
    run_batch(BatchOptions((f"@{listing}",), out, model=model, batch_size=batch_size, engine="ray"),
              progress=lambda p: p.done and marks.result(p.done))


def run_plain_loop(model: Path, paths: list[str], out: Path, batch_size: int, marks: Marks) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from resnet_deploy.runtime.answers import top_classes

    indices, scores = [], []
    with Predictor(model, provider="cpu") as predictor:
        for start in range(0, len(paths), batch_size):
            i, s = top_classes(predictor.run(predictor.preprocess(paths[start : start + batch_size])), 5)
            indices.extend(i.tolist())
            scores.extend(s.tolist())
            marks.result(start + len(i))
    pq.write_table(pa.table({"path": paths, "top_k_indices": indices, "top_k_scores": scores}), out / "plain.parquet")


def run_inference_bound(model: Path, paths: list[str], out: Path, batch_size: int, marks: Marks) -> None:
    with Predictor(model, provider="cpu") as predictor:
        ready = predictor.preprocess(paths[:64])
        for start in range(0, len(paths), batch_size):
            rows = [(start + j) % len(ready) for j in range(min(batch_size, len(paths) - start))]
            predictor.run(ready[rows])
            marks.result(start + len(rows))


# The configurations, by name: each runs in a process of its own (``--child NAME``).
ENGINES: dict[str, Callable[[Path, list[str], Path, int, Marks], None]] = {
    "local": run_local,
    "plain loop": run_plain_loop,
    "inference bound": run_inference_bound,
    "ray": run_ray,  # a local Ray on this machine (--ray-python: an interpreter with the ray extra)
}


def make_images(folder: Path, count: int, seed: int = 0) -> list[str]:
    """``count`` JPEGs from the shipped portrait (512x600): crops of at least half of each side,
    shorter sides from 224 to 640, a mirror image one time in two, JPEG quality 60 to 95."""
    from PIL import Image, ImageOps

    photo = Image.open(sample_image_path()).convert("RGB")
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        w, h = (int(rng.integers(256, 513)), int(rng.integers(300, 601)))
        left, top = int(rng.integers(0, 513 - w)), int(rng.integers(0, 601 - h))
        short = int(rng.integers(224, 641))
        image = photo.crop((left, top, left + w, top + h))
        image = image.resize((short, round(short * h / w)) if w <= h else (round(short * w / h), short),
                             Image.Resampling.BILINEAR)
        if rng.integers(2):
            image = ImageOps.mirror(image)
        path = folder / f"{i // 1000:03d}" / f"photo{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=int(rng.integers(60, 96)))
        paths.append(str(path))
    return paths


def child(args: argparse.Namespace) -> None:
    paths = Path(args.list).read_text().splitlines()
    marks = Marks()
    ENGINES[args.child](Path(args.model), paths, Path(args.work), args.batch_size, marks)
    first, last = marks.first or marks.last, marks.last
    print(json.dumps({"first_at": first[0], "span_s": last[0] - first[0], "cpu_s": last[1] - first[1],
                      "images_after_first": last[2] - first[2], "images": last[2],
                      "vm_hwm_mb": _vm_hwm_kb() / 1024}))


def _vm_hwm_kb() -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])


def measure(name: str, model: Path, paths: list[str], work: Path, batch_size: int,
            python: str = sys.executable) -> dict:
    """One configuration in a fresh process, its process tree's RSS sampled while it runs."""
    listing = work / f"{name.replace(' ', '-')}-list.txt"
    listing.write_text("".join(p + "\n" for p in paths))
    out = work / name.replace(" ", "-")
    out.mkdir()
    launched = time.time()
    proc = subprocess.Popen([python, __file__, "--child", name.split(" x")[0], "--model", str(model),
                             "--list", str(listing),
                             "--work", str(out / "job") if name.startswith(("local", "ray")) else str(out),
                             "--batch-size", str(batch_size)], stdout=subprocess.PIPE, text=True)
    peak, tree = 0, psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [tree, *tree.children(recursive=True)]))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed with status {proc.returncode}")
    got = json.loads(stdout.strip().splitlines()[-1])
    n = got["images_after_first"]
    return {"config": name, "images": got["images"], "images_per_s": n / got["span_s"] if got["span_s"] else None,
            "cpu_s_per_image": got["cpu_s"] / n if n else None, "startup_s": got["first_at"] - launched,
            "peak_rss_mb": peak / 2**20, "main_vm_hwm_mb": got["vm_hwm_mb"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, nargs="+", default=[18, 50])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rss-images", type=int, default=0,
                        help="Also run the local engine over this many paths (hard links).")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, help="Write DIR/<date>-batch.json (flat records).")
    parser.add_argument("--ray-python", help="A Python with the ray extra installed, for the ray engine "
                                             "(default: this one, if it has Ray).")
    parser.add_argument("--child", choices=list(ENGINES), help=argparse.SUPPRESS)
    for flag in ("--model", "--list", "--work"):  # the child's: what to run on, and where
        parser.add_argument(flag, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from resnet_deploy.export.exporter import ExportOptions, export_model

    ray_python = args.ray_python or (sys.executable if importlib.util.find_spec("ray") else None)
    if ray_python is None:
        print("ray: not measured (no Ray here; give --ray-python)", file=sys.stderr)
    records = []
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        work = Path(tmp)
        paths = make_images(work / "photos", args.images)
        many = [*paths]
        for i in range(len(paths), args.rss_images):  # more paths, no more disk: hard links
            link = work / "links" / f"{i // 1000:03d}" / f"photo{i:06d}.jpg"
            link.parent.mkdir(parents=True, exist_ok=True)
            os.link(paths[i % len(paths)], link)
            many.append(str(link))
        for depth in args.depth:
            model = work / f"resnet{depth}.onnx"
            export_model(ExportOptions(f"resnet{depth}"), model)
            runs = [(name, paths) for name in ENGINES if name != "ray" or ray_python]
            runs += [(f"local x{len(many)}", many)] if args.rss_images else []
            for name, chosen in runs:
                (work / f"r{depth}").mkdir(exist_ok=True)
                python = ray_python if name == "ray" else sys.executable
                record = {"model": f"resnet{depth}",
                          **measure(name, model, chosen, work / f"r{depth}", args.batch_size, python)}
                records.append(record)
                print(json.dumps(record), flush=True)
    _report(records, args.out)


def _report(records: list[dict], out: Path | None) -> None:
    print(f"\n{'model':10} {'config':18} {'images':>7} {'images/s':>9} {'CPU s/image':>12} {'start-up s':>11} "
          f"{'peak RSS MB':>12} {'main HWM MB':>12}")
    for r in records:
        def fmt(v: float | None, spec: str) -> str:
            return "-" if v is None else format(v, spec)
        print(f"{r['model']:10} {r['config']:18} {r['images']:>7} {fmt(r['images_per_s'], '9.1f')} "
              f"{fmt(r['cpu_s_per_image'], '12.4f')} {r['startup_s']:11.2f} {r['peak_rss_mb']:12.0f} "
              f"{r['main_vm_hwm_mb']:12.0f}")
    env = {"machine": machine(), "cpu_flags": sorted(cpu_flags()), "cores": len(os.sched_getaffinity(0)),
           "loadavg": os.getloadavg(), "python": platform.python_version(), "date": datetime.date.today().isoformat()}
    print(f"\n{env['machine']['cpu']}, {env['cores']} cores, load average {env['loadavg'][0]:.1f}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{env['date']}-batch.json"
        path.write_text(json.dumps({"environment": env, "records": records}, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
