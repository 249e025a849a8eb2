"""Torch-free helpers shared by training and inference: hard Dice, file sizes, the shipped-file size limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_SHIPPED_MB = 25.0


def _as_array(mask: object) -> np.ndarray:
    if hasattr(mask, "detach"):  # a torch tensor, without importing torch
        mask = mask.detach().cpu().numpy()
    return np.asarray(mask, dtype=bool)


def dice_score(pred: object, target: object) -> float:
    """Hard Dice of two binary masks, NumPy arrays or tensors (non-zero = inside; 1.0 when both are empty)."""
    pred, target = _as_array(pred), _as_array(target)
    total = int(pred.sum()) + int(target.sum())
    return 1.0 if total == 0 else 2 * int((pred & target).sum()) / total


def size_mb(path: str | Path) -> float:
    """File size in MB (10^6 bytes)."""
    return Path(path).stat().st_size / 1e6
