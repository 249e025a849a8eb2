"""Learned liver filter: a 2D U-Net (EfficientNet-Lite0 encoder) on abdomen-window slices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from lesiondx.io import resize
from lesiondx.models import bce_dice_loss, build_segmenter
from lesiondx.models.training import optimise_step


def _prep(grey: np.ndarray, px: int) -> torch.Tensor:
    return torch.from_numpy(resize(np.asarray(grey, np.float32) / 255.0, (px, px)).astype(np.float32))[None]


def train_liver_net(slices: Sequence[np.ndarray], masks: Sequence[np.ndarray], *, px: int = 256, epochs: int = 6,
                    batch_size: int = 8, lr: float = 1e-3, seed: int = 0, log=None) -> nn.Module:
    """U-Net on grey slices (0..255) and boolean liver masks, resized to ``px``²; random horizontal
    shifts of up to 8 % as augmentation; BCE + Dice; AdamW one-cycle."""
    if len(slices) != len(masks) or not slices:
        raise ValueError(f"need one mask per slice, got {len(slices)} and {len(masks)}")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    x = torch.stack([_prep(s, px) for s in slices])
    y = torch.stack([torch.from_numpy((resize(np.asarray(m, np.float32), (px, px), order=0) > 0.5).astype(np.float32))[None]
                     for m in masks])
    model = build_segmenter("unet", "efficientnet_lite0", in_channels=1)
    steps = epochs * max(1, int(np.ceil(len(x) / batch_size)))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    for epoch in range(epochs):
        total = 0.0
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            shift = int(rng.integers(-px // 12, px // 12 + 1))
            xb, yb = torch.roll(x[idx], shift, dims=-1), torch.roll(y[idx], shift, dims=-1)
            loss = bce_dice_loss(model(xb), yb)
            total += optimise_step(loss, opt, sched) * len(idx)
        if log:
            log(f"liver epoch {epoch + 1}/{epochs} loss {total / len(x):.4f}")
    return model.eval()


@torch.no_grad()
def predict_liver(model: nn.Module, grey: np.ndarray, *, px: int = 256, batch_size: int = 16) -> np.ndarray:
    """Boolean liver mask ``(S, H, W)`` for grey slices ``(S, H, W)``: the largest 3D component of the
    thresholded U-Net output, holes filled per slice."""
    model.eval()
    s, h, w = grey.shape
    probs = []
    for start in range(0, s, batch_size):
        xb = torch.stack([_prep(sl, px) for sl in grey[start:start + batch_size]])
        probs.append(torch.sigmoid(model(xb))[:, 0].numpy())
    small = np.concatenate(probs) > 0.5
    labels, n = ndimage.label(small)
    if n > 1:
        sizes = ndimage.sum_labels(small, labels, index=np.arange(1, n + 1))
        small = labels == (int(np.argmax(sizes)) + 1)
    small = np.stack([ndimage.binary_fill_holes(sl) for sl in small])
    return np.stack([resize(sl.astype(np.float32), (h, w), order=0) > 0.5 for sl in small])
