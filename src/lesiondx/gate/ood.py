"""Out-of-distribution statistics shared by the tasks: distance to the training set in a model's own
feature space (standardised, top principal axes whitened — a Mahalanobis distance in that subspace —
then the mean distance to the ``k`` nearest training rows). Threshold: a quantile of the training rows'
leave-one-out scores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

QUANTILE = 0.99


@dataclass(frozen=True)
class OodStats:
    """Standardiser, whitened principal axes and the projected training frames; ``threshold`` in score units."""

    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    axes: np.ndarray  # (k, D): principal axes divided by their standard deviation
    train: np.ndarray  # (n, k): training frames in the whitened space
    neighbours: int
    threshold: float

    def project(self, features: np.ndarray) -> np.ndarray:
        return ((np.atleast_2d(features) - self.mean) / self.scale) @ self.axes.T

    def score(self, features: np.ndarray, *, leave_one_out: bool = False) -> np.ndarray:
        """Mean whitened distance to the ``neighbours`` nearest training frames, per row of ``features``."""
        points = self.project(features)
        d = np.sqrt(np.maximum(((points[:, None, :] - self.train[None]) ** 2).sum(-1), 0))
        d.sort(axis=1)
        start = 1 if leave_one_out else 0
        return d[:, start : start + self.neighbours].mean(1)


def fit_ood(features: np.ndarray, *, n_components: int = 32, neighbours: int = 5, quantile: float = QUANTILE) -> OodStats:
    """Fit the statistics on training feature rows ``(n, D)``; threshold = ``quantile`` of the
    leave-one-out training scores."""
    x = np.asarray(features, dtype=np.float64)
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    k = min(n_components, len(s))
    std = s[:k] / np.sqrt(max(1, len(x) - 1))
    axes = vt[:k] / std[:, None]
    stats = OodStats(mean.astype(np.float32), scale.astype(np.float32), axes.astype(np.float32),
                     (z @ axes.T).astype(np.float32), neighbours, 0.0)
    loo = stats.score(features, leave_one_out=True)
    return OodStats(stats.mean, stats.scale, stats.axes, stats.train, neighbours, float(np.quantile(loo, quantile)))


def save_stats(stats: OodStats, path: Path, meta: dict) -> None:
    """Write the statistics (a few hundred KB) with a JSON ``meta`` string (how they were fitted and checked)."""
    np.savez_compressed(path, mean=stats.mean, scale=stats.scale, axes=stats.axes.astype(np.float16),
                        train=stats.train, neighbours=stats.neighbours, threshold=stats.threshold, meta=json.dumps(meta))


@lru_cache(maxsize=2)
def load_stats(path: Path) -> OodStats | None:
    """The shipped statistics, or ``None`` when the file is absent (a user-trained model without them)."""
    if not Path(path).is_file():
        return None
    d = np.load(path)
    return OodStats(d["mean"], d["scale"], d["axes"].astype(np.float32), d["train"], int(d["neighbours"]), float(d["threshold"]))


