"""The paper's degradation experiment (He et al. 2015, Fig. 1 and Fig. 6) with this toolkit's zoo.

    python benchmarks/degradation.py   # plain-20/56 and ResNet-20/56, 1 seed -> ./degradation-results/
    python benchmarks/degradation.py --out benchmarks/results --force   # replace the committed results, on purpose
    python benchmarks/degradation.py --epochs 1 --depths 20 --out /tmp/smoke   # CI's smoke run

Trains the plain nets and their residual twins on a real data set that ships offline: the UCI
handwritten digits inside scikit-learn (1,797 scans of 8x8 pixels), upscaled to 16x16 (as in the
tests; ``--image-size 32`` for CIFAR's size at four times the cost), 1,400 for training and 397
held out. The recipe is the paper's CIFAR recipe scaled
down: SGD with momentum 0.9, weight decay 1e-4, learning rate 0.05 (a tenth of it in the first
epoch, the paper's warm-up for ResNet-110) divided by 10 at 50 % and 75 % of the epochs, batch 32
(1,400 images give 44 steps an epoch), He initialisation with every BatchNorm scale 1 (the toolkit's default
1/sqrt(blocks) scale on the last BatchNorm of residual branches is undone: it would favour the
residual nets), 2-pixel random translations as augmentation (the paper's flips would turn digits
into other symbols); the same seeds, data order and budget for every net. Training error is
counted on the mini-batches of each epoch as in the paper's Fig. 6; held-out error in eval mode.

Then each trained net goes through the toolkit's own commands: ``resnet-deploy export``,
``resnet-deploy quantize`` (calibrated on 128 training images) and ``resnet-deploy bench`` with
``--eval-data`` for the held-out accuracy of the fp32 and INT8 files on onnxruntime's CPU EP.

Writes ``<out>/degradation.json`` and ``<out>/degradation.png`` (thin lines: training error, bold:
held-out error; plain nets left, residual nets right).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import resnet_deploy as rd  # noqa: E402
from resnet_deploy._machine import machine  # noqa: E402
from tests._digits import digits  # noqa: E402  (the data of the INT8 tests, at any size)

def paper_init(model: nn.Module) -> nn.Module:
    """He init is the zoo's; BatchNorm scales back to 1, as in the paper."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def translate(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random translations of up to ``pad`` pixels (pad with the background, crop back)."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=float(x.min()))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def train(name: str, data: tuple[np.ndarray, ...], epochs: int, seed: int, batch: int,
          lr: float) -> tuple[nn.Module, dict]:
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in data)
    torch.manual_seed(seed)
    model = paper_init(rd.create_model(name, num_classes=10, seed=seed)).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[epochs // 2, (3 * epochs) // 4], gamma=0.1)
    gen = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"train_error": [], "test_error": []}
    for epoch in range(epochs):
        # The paper warms ResNet-110 up at a tenth of the rate; here every net gets one such epoch.
        if epoch <= 1:  # the schedule's milestones come later and scale the rate it finds
            for group in optimizer.param_groups:
                group["lr"] = lr / 10 if epoch == 0 else lr
        model.train()
        wrong = seen = 0
        for idx in torch.randperm(len(x_train), generator=gen).split(batch):
            logits = model(translate(x_train[idx], gen))
            loss = nn.functional.cross_entropy(logits, y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            wrong += int((logits.argmax(1) != y_train[idx]).sum())
            seen += len(idx)
        schedule.step()
        model.eval()
        with torch.inference_mode():
            test_wrong = int((model(x_test).argmax(1) != y_test).sum())
        history["train_error"].append(wrong / seen)
        history["test_error"].append(test_wrong / len(y_test))
    return model.eval(), history


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "resnet_deploy_cli.main", *args], check=True, stdout=subprocess.DEVNULL)


def deploy(name: str, model: nn.Module, image_size: int, folder: Path, calib: Path, heldout: Path) -> dict[str, float]:
    """export -> quantize -> bench --eval-data, all through the toolkit's commands."""
    ckpt, fp32, int8, report = (folder / f"{name}.{ext}" for ext in ("pth", "onnx", "int8.onnx", "bench.json"))
    torch.save(model.state_dict(), ckpt)
    cli("export", "--model", name, "--weights", str(ckpt), "--num-classes", "10", "--image-size", str(image_size),
        "-o", str(fp32))
    cli("quantize", str(fp32), "--calibration", str(calib), "-o", str(int8))
    cli("bench", str(fp32), str(int8), "--providers", "cpu", "--eval-data", str(heldout), "--iterations", "3",
        "--rounds", "1", "--json", str(report))
    records = json.loads(report.read_text())["results"]
    by_file = {Path(r["source"]).name: r["accuracy"] for r in records if r.get("source")}
    return {"fp32": by_file[fp32.name], "int8": by_file[int8.name]}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colors = {20: "tab:orange", 32: "tab:green", 44: "tab:purple", 56: "tab:red", 110: "tab:brown"}
    for ax, kind in zip(axes, ("plain", "resnet")):
        for name, runs in results.items():
            if not name.startswith(kind):
                continue
            depth = int(name[len(kind):])
            train_err = np.mean([r["train_error"] for r in runs], axis=0) * 100
            test_err = np.mean([r["test_error"] for r in runs], axis=0) * 100
            epochs = np.arange(1, len(train_err) + 1)
            ax.plot(epochs, train_err, color=colors.get(depth, "black"), linewidth=0.9, linestyle="--")
            ax.plot(epochs, test_err, color=colors.get(depth, "black"), linewidth=2.2, label=f"{kind}-{depth}")
        ax.set_title("plain networks" if kind == "plain" else "residual networks (ResNets)")
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("error (%)  dashed: training, bold: held-out")
    axes[0].set_yscale("log")
    fig.suptitle("Degradation on scikit-learn's digits, He et al. 2015 Fig. 6 scaled down")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=32, help="mini-batch size (the paper: 128 on 50k images)")
    parser.add_argument("--lr", type=float, default=0.05, help="initial learning rate (the paper: 0.1 at batch 128)")
    parser.add_argument("--depths", default="20,56", help="comma-separated CIFAR depths (6n+2)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds; curves are averaged")
    # Not benchmarks/results: a run must not replace the committed results unless asked to.
    parser.add_argument("--out", type=Path, default=Path("degradation-results"),
                        help="folder for degradation.json/png (default ./degradation-results)")
    parser.add_argument("--force", action="store_true", help="replace degradation.json/png that exist in --out")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    existing = [p for p in (args.out / "degradation.json", args.out / "degradation.png") if p.exists()]
    if existing and not args.force:  # before the training, not after it
        parser.error(f"{existing[0]} already exists; pass --force to replace it (or another --out)")
    args.out.mkdir(parents=True, exist_ok=True)
    depths = [int(d) for d in args.depths.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    data = digits(args.image_size)
    work = Path(tempfile.mkdtemp(prefix="degradation-"))  # checkpoints, ONNX files, data: not results
    calib, heldout = work / "calib.npy", work / "heldout.npz"
    np.save(calib, data[0][:128])
    np.savez(heldout, x=data[2], y=data[3])
    start = time.perf_counter()
    results: dict[str, list[dict]] = {}
    deployed: dict[str, dict] = {}
    for depth in depths:
        for kind in ("plain", "resnet"):
            name = f"{kind}{depth}"
            for seed in seeds:
                t0 = time.perf_counter()
                model, history = train(name, data, args.epochs, seed, args.batch, args.lr)
                history["seconds"] = time.perf_counter() - t0
                results.setdefault(name, []).append(history)
                print(f"{name} seed {seed}: final train error {history['train_error'][-1]:.2%}, "
                      f"held-out {history['test_error'][-1]:.2%} ({history['seconds']:.0f} s)", flush=True)
            deployed[name] = deploy(name, model, args.image_size, work, calib, heldout)  # the last seed's model
            print(f"{name}: held-out accuracy fp32 {deployed[name]['fp32']:.2%}, "
                  f"int8 {deployed[name]['int8']:.2%}", flush=True)
    summary = {
        name: {
            "final_train_error": float(np.mean([r["train_error"][-1] for r in runs])),
            "final_test_error": float(np.mean([r["test_error"][-1] for r in runs])),
            "deployed_accuracy": deployed[name],
        }
        for name, runs in results.items()
    }
    payload = {
        "data": f"scikit-learn digits, {args.image_size}x{args.image_size}, 1400 train / 397 held out",
        "recipe": {"optimizer": "SGD momentum 0.9, weight decay 1e-4",
                   "lr": f"{args.lr} (a tenth in the first epoch), /10 at 50% and 75% of epochs",
                   "batch": args.batch, "epochs": args.epochs, "seeds": seeds,
                   "augmentation": "random 2-pixel translations"},
        "machine": {**machine(), "threads": torch.get_num_threads()},
        "wall_seconds": time.perf_counter() - start,
        "summary": summary,
        "curves": results,
    }
    (args.out / "degradation.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(results, args.out / "degradation.png")
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"wall_seconds": round(payload["wall_seconds"]), "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
