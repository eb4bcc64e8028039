"""Which INT8 recipe is fastest on this CPU, and what each costs in accuracy on real data.

    python benchmarks/int8_recipes.py [--duration 10] [--out benchmarks/results]

For every recipe of ``resnet_deploy.precision.quantize.RECIPES``: ResNet-50 (random init, synthetic
calibration: timing only) quantized and measured with ``resnet-deploy bench`` on onnxruntime's
CPU EP and the OpenVINO provider, side by side with the fp32 file and eager PyTorch in one run
(interleaved rounds); and ResNet-20 trained on scikit-learn's digits, quantized with the same
recipe on real calibration data, held-out accuracy against fp32. Writes
``<out>/<date>-int8-recipes.json`` and ``.md``. About 6 minutes on 2 cores; run it on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resnet_deploy.export.exporter import ExportOptions, export_model  # noqa: E402
from resnet_deploy.graph.io import load_onnx, save_onnx  # noqa: E402
from resnet_deploy.export.pipeline import ort_outputs  # noqa: E402
from resnet_deploy.precision.quantize import RECIPES, quantize_model  # noqa: E402
from resnet_deploy.graph.verify import fixed_inputs  # noqa: E402
from tests._digits import IMAGE_SIZE, digits, train_resnet20  # noqa: E402


def digits_accuracy(folder: Path) -> dict[str, dict[str, float]]:
    """Held-out accuracy of fp32 and of each recipe on the digits model."""
    import torch

    x_train, y_train, x_test, y_test = digits()
    model = train_resnet20(x_train, y_train)
    ckpt = folder / "digits.pth"
    torch.save(model.state_dict(), ckpt)
    export_model(ExportOptions("resnet20", weights=ckpt, image_size=IMAGE_SIZE), folder / "digits.onnx")
    fp32 = load_onnx(folder / "digits.onnx")
    accuracy = {"fp32": float(np.mean(ort_outputs(fp32, x_test).argmax(1) == y_test))}
    for name, recipe in RECIPES.items():
        quantized = quantize_model(fp32, x_train[:128], recipe=recipe, source="digits").model
        accuracy[name] = float(np.mean(ort_outputs(quantized, x_test).argmax(1) == y_test))
    return {"held_out_accuracy": accuracy, "held_out_images": len(y_test)}


def resnet50_files(folder: Path) -> list[Path]:
    fp32_path = folder / "resnet50.onnx"
    export_model(ExportOptions("resnet50"), fp32_path)
    fp32 = load_onnx(fp32_path)
    samples = fixed_inputs((16, 3, 224, 224), seed=123)
    files = [fp32_path]
    for name, recipe in RECIPES.items():
        path = folder / f"{name}.onnx"
        save_onnx(quantize_model(fp32, samples, recipe=recipe, source="resnet50").model, path)
        files.append(path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of timed runs per engine")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    stamp = datetime.date.today().isoformat()
    with tempfile.TemporaryDirectory(prefix="int8-recipes-") as tmp:
        folder = Path(tmp)
        accuracy = digits_accuracy(folder)
        print(json.dumps(accuracy, indent=2))
        files = resnet50_files(folder)
        bench_json = folder / "bench.json"
        subprocess.run(
            [sys.executable, "-m", "resnet_deploy_cli.main", "bench", *map(str, files), "--providers", "cpu,openvino",
             "--duration", str(args.duration), "--rounds", "5", "--json", str(bench_json),
             "--markdown", str(args.out / f"{stamp}-int8-recipes.md")],
            check=True,
        )
        bench = json.loads(bench_json.read_text())
    recipes = {name: recipe.describe() for name, recipe in RECIPES.items()}
    payload = {"recipes": recipes, "digits": accuracy, "resnet50_bench": bench}
    (args.out / f"{stamp}-int8-recipes.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out / f'{stamp}-int8-recipes.json'}")


if __name__ == "__main__":
    main()
