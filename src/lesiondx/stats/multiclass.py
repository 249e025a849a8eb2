"""Multi-class AUC: one-vs-rest per class with DeLong CIs and a bootstrap CI for the macro mean."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validate import ArrayLike
from .bootstrap import BootstrapCI, _percentile_ci, resample_weights, weighted_auc
from .delong import AucResult, auc_delong


@dataclass(frozen=True)
class MulticlassAucResult:
    """One-vs-rest AUC for each class (DeLong CI) and their unweighted mean (bootstrap CI)."""

    classes: tuple[Any, ...]
    per_class: dict[Any, AucResult]
    macro: BootstrapCI


def one_vs_rest_auc(
    y_true: ArrayLike,
    proba: ArrayLike,
    classes: Sequence[Any],
    *,
    groups: ArrayLike | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    conf_level: float = 0.95,
) -> MulticlassAucResult:
    """One-vs-rest AUCs; ``proba[:, j]`` is the score for ``classes[j]``.

    The macro AUC CI resamples rows (or ``groups``, i.e. patients) with a fixed seed;
    replicates in which some class is absent are dropped.
    """
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise ValueError(f"proba must have shape (n, {len(classes)}), got {p.shape}")
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"length mismatch: y_true has {y.shape[0]} values, proba has {p.shape[0]} rows")
    if not np.all(np.isfinite(p)):
        raise ValueError("proba contains NaN or infinite values")
    unknown = set(map(str, np.unique(y.astype(str)))) - set(map(str, classes))
    if unknown:
        raise ValueError(f"y_true has labels not in classes: {sorted(unknown)}")
    onehot = np.stack([y.astype(str) == str(c) for c in classes], axis=1)
    per_class = {c: auc_delong(onehot[:, j], p[:, j], conf_level) for j, c in enumerate(classes)}
    macro_est = float(np.mean([r.auc for r in per_class.values()]))
    reps = []
    strata = None if groups is not None else onehot.argmax(axis=1)
    for w in resample_weights(y.shape[0], groups=groups, strata=strata, n_boot=n_boot, seed=seed):
        aucs = np.stack([weighted_auc(onehot[:, j], p[:, j], w) for j in range(len(classes))], axis=1)
        reps.append(aucs.mean(axis=1))
    macro = _percentile_ci(np.concatenate(reps), macro_est, n_boot, conf_level)
    return MulticlassAucResult(classes=tuple(classes), per_class=per_class, macro=macro)
