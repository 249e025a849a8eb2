"""Percentile bootstrap confidence intervals, resampling by patient (group) when given.

Resampling is expressed as integer weights per row (how often each row is drawn), so the
AUC of thousands of replicates is computed at once with array operations. All functions
take a ``seed`` and return identical results for identical inputs and seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ._validate import ArrayLike, as_scores, check_binary

_CHUNK_CELLS = 4_000_000  # max replicate x row cells held in memory at once


@dataclass(frozen=True)
class BootstrapCI:
    """Point estimate with a percentile bootstrap CI; ``n_valid`` replicates were usable."""

    estimate: float
    ci_low: float
    ci_high: float
    n_boot: int
    n_valid: int
    conf_level: float = 0.95


@dataclass(frozen=True)
class RocBand:
    """Pointwise bootstrap band of the ROC curve: TPR quantiles on a fixed FPR grid."""

    fpr: np.ndarray
    tpr_low: np.ndarray
    tpr_median: np.ndarray
    tpr_high: np.ndarray
    conf_level: float = 0.95


def _group_index(groups: ArrayLike | None, n: int) -> tuple[np.ndarray, int]:
    if groups is None:
        return np.arange(n), n
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"length mismatch: groups has {g.size} values, data has {n}")
    _, inv = np.unique(g.astype(str), return_inverse=True)
    return inv, int(inv.max()) + 1


def resample_weights(
    n: int,
    *,
    groups: ArrayLike | None = None,
    strata: ArrayLike | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Yield chunks of bootstrap weights, arrays of shape (b, n) summing to the draw counts.

    With ``groups`` whole groups (patients) are drawn with replacement and every row of a
    drawn group gets its group's count. Without groups rows are drawn, separately within
    each level of ``strata`` (e.g. the class label, as pROC's stratified bootstrap).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    gidx, n_groups = _group_index(groups, n)
    if groups is not None or strata is None:
        blocks = [np.arange(n_groups)]
    else:
        st = np.asarray(strata)
        blocks = [np.flatnonzero(st == v) for v in np.unique(st)]
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(n, n_groups))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        counts = np.zeros((b, n_groups))
        offs = (np.arange(b) * n_groups)[:, None]
        for block in blocks:
            draw = block[rng.integers(0, block.size, size=(b, block.size))]
            counts += np.bincount((draw + offs).ravel(), minlength=b * n_groups).reshape(b, n_groups)
        yield counts[:, gidx]
        done += b


def _score_bins(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row order sorting the scores, and start offsets of each distinct score in that order."""
    order = np.argsort(s, kind="stable")
    _, starts = np.unique(s[order], return_index=True)
    return order, starts


def _class_weights(y: np.ndarray, w: np.ndarray, order: np.ndarray, starts: np.ndarray):
    wp = np.add.reduceat((w * y)[:, order], starts, axis=1)
    wn = np.add.reduceat((w * ~y)[:, order], starts, axis=1)
    return wp, wn


def weighted_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUC for each row of weights ``w`` (b, n); NaN where a class has zero weight."""
    order, starts = _score_bins(s)
    wp, wn = _class_weights(y, w, order, starts)
    below = np.cumsum(wn, axis=1) - wn
    num = np.sum(wp * (below + 0.5 * wn), axis=1)
    den = wp.sum(axis=1) * wn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _percentile_ci(values: np.ndarray, estimate: float, n_boot: int, conf_level: float) -> BootstrapCI:
    ok = values[np.isfinite(values)]
    if ok.size == 0:
        raise ValueError("no bootstrap replicate was usable (each lacked a class or was undefined)")
    alpha = (1.0 - conf_level) / 2.0
    lo, hi = np.quantile(ok, [alpha, 1.0 - alpha])
    return BootstrapCI(float(estimate), float(lo), float(hi), n_boot, int(ok.size), conf_level)


def bootstrap_auc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    conf_level: float = 0.95,
) -> BootstrapCI:
    """Percentile bootstrap CI of the AUC; resample by ``groups`` (patients) if given,
    otherwise stratified by class. Replicates missing a class are dropped."""
    y, s = check_binary(y_true, y_score)
    est = float(weighted_auc(y, s, np.ones((1, y.size)))[0])
    strata = None if groups is not None else y
    reps = [
        weighted_auc(y, s, w) for w in resample_weights(y.size, groups=groups, strata=strata, n_boot=n_boot, seed=seed)
    ]
    return _percentile_ci(np.concatenate(reps), est, n_boot, conf_level)


def bootstrap_roc_band(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    fpr_grid: ArrayLike | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    conf_level: float = 0.95,
) -> RocBand:
    """Pointwise percentile band of sensitivity at fixed false-positive rates (for plots)."""
    y, s = check_binary(y_true, y_score)
    grid = np.linspace(0.0, 1.0, 101) if fpr_grid is None else as_scores(fpr_grid, "fpr_grid")
    order, starts = _score_bins(s)
    curves = []
    strata = None if groups is not None else y
    for w in resample_weights(y.size, groups=groups, strata=strata, n_boot=n_boot, seed=seed):
        wp, wn = _class_weights(y, w, order, starts)
        tp = np.cumsum(wp[:, ::-1], axis=1)  # cases with score >= each distinct value, high to low
        fp = np.cumsum(wn[:, ::-1], axis=1)
        ptot, ntot = tp[:, -1:], fp[:, -1:]
        ok = (ptot[:, 0] > 0) & (ntot[:, 0] > 0)
        tpr = np.hstack((np.zeros((ok.sum(), 1)), tp[ok] / ptot[ok]))
        fpr = np.hstack((np.zeros((ok.sum(), 1)), fp[ok] / ntot[ok]))
        for f_row, t_row in zip(fpr, tpr):
            idx = np.searchsorted(f_row, grid, side="right") - 1
            curves.append(t_row[idx])
    if not curves:
        raise ValueError("no bootstrap replicate contained both classes")
    arr = np.vstack(curves)
    alpha = (1.0 - conf_level) / 2.0
    lo, med, hi = np.quantile(arr, [alpha, 0.5, 1.0 - alpha], axis=0)
    return RocBand(fpr=grid, tpr_low=lo, tpr_median=med, tpr_high=hi, conf_level=conf_level)


def bootstrap_statistic(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    groups: ArrayLike | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    conf_level: float = 0.95,
) -> BootstrapCI:
    """Percentile CI of any statistic of row indices, e.g. ``lambda idx: np.mean(x[idx])``.

    ``statistic`` receives the resampled row indices (with repeats); NaN results are dropped.
    """
    est = float(statistic(np.arange(n)))
    values = []
    rows = np.arange(n)
    for w in resample_weights(n, groups=groups, n_boot=n_boot, seed=seed):
        for wrow in w.astype(int):
            values.append(float(statistic(np.repeat(rows, wrow))))
    return _percentile_ci(np.asarray(values), est, n_boot, conf_level)
