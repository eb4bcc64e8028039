"""Check once that a features file (``export --features``) equals torchvision's own ResNet with the
same state_dict and ``fc = Identity`` (issue 25 §1).

torchvision does not import beside the pinned torch 2.13.0 CPU build, so this runs in two
environments: the main one exports (``--export``), and one with torch and torchvision
(``pip install torch==2.14.1 torchvision==0.29.1 onnxruntime``) compares (``--compare``)::

    python benchmarks/features_vs_torchvision.py --export /tmp/fv            # main venv
    /path/to/tv-venv/bin/python benchmarks/features_vs_torchvision.py --compare /tmp/fv

The export saves our zoo's seeded weights as a checkpoint (exported with ``--weights``) and as
numpy arrays (read by the other environment), so torchvision's net gets exactly those weights.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

DEPTHS = (18, 50)
SIZE = 224


def export(folder: Path) -> None:
    import torch

    import resnet_deploy as rd

    folder.mkdir(parents=True, exist_ok=True)
    for depth in DEPTHS:
        name = f"resnet{depth}"
        torch.save(rd.create_model(name).state_dict(), folder / f"{name}.pth")
        np.savez(folder / f"{name}.npz", **{k: v.numpy() for k, v in rd.create_model(name).state_dict().items()})
        for normalize in (False, True):
            out = folder / f"{name}_features{'_norm' if normalize else ''}.onnx"
            subprocess.run([str(Path(sys.executable).parent / "resnet-deploy"), "export", "--depth", str(depth),
                            "--features", "--weights", str(folder / f"{name}.pth"), "-o", str(out), "--force",
                            *(["--normalize"] if normalize else [])], check=True, capture_output=True)


def compare(folder: Path) -> None:
    import onnxruntime as ort
    import torch
    import torchvision

    x = np.random.default_rng(0).standard_normal((4, 3, SIZE, SIZE), dtype=np.float32)
    for depth in DEPTHS:
        name = f"resnet{depth}"
        net = getattr(torchvision.models, name)(weights=None)
        state = {k: torch.from_numpy(v) for k, v in np.load(folder / f"{name}.npz").items()}
        net.load_state_dict(state, strict=True)
        net.fc = torch.nn.Identity()
        net.eval()
        with torch.inference_mode():
            want = net(torch.from_numpy(x)).numpy().astype(np.float64)
        for normalize in (False, True):
            ref = want / np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-12) if normalize else want
            path = folder / f"{name}_features{'_norm' if normalize else ''}.onnx"
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = session.run(None, {session.get_inputs()[0].name: x})[0]
            rel = float(np.abs(got - ref).max() / np.abs(ref).max())
            print(f"{path.name}: output {got.shape}, torchvision {torchvision.__version__} (torch {torch.__version__}) "
                  f"max rel error {rel:.2e} {'ok' if rel <= 1e-4 else 'OVER 1e-4'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--export", type=Path)
    group.add_argument("--compare", type=Path)
    args = parser.parse_args()
    export(args.export) if args.export else compare(args.compare)


if __name__ == "__main__":
    main()
