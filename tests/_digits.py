"""A real data set and a model trained on it, shared by the INT8 tests and benchmarks/int8_recipes.py:
the UCI handwritten digits shipped inside scikit-learn (1797 real 8x8 scans), and ResNet-20
trained on them for a few seconds on 2 cores."""

from __future__ import annotations

import time

import numpy as np

IMAGE_SIZE = 16  # sklearn's 8x8 digits, upsampled x2; ResNet-20 is fully convolutional


def digits(image_size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and held-out splits as ``[N, 3, S, S]`` float32 and int64 labels (1400 / 397)."""
    import torch
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.from_numpy(data.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = ((x - 0.3) / 0.35).repeat(1, 3, 1, 1).numpy()
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def train_resnet20(x_train: np.ndarray, y_train: np.ndarray, *, epochs: int = 6, batch: int = 64, seed: int = 0):
    """ResNet-20 trained with AdamW and a one-cycle schedule; returned in eval mode."""
    import torch

    import resnet_deploy as rd

    torch.manual_seed(seed)
    model = rd.create_model("resnet20").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=epochs * (len(x_train) // batch))
    start = time.perf_counter()
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(len(xt) // batch):
            idx = perm[i * batch : (i + 1) * batch]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    print(f"trained in {time.perf_counter() - start:.1f}s")
    return model.eval()
