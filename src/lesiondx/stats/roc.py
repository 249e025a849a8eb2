"""Empirical ROC curve, AUC and the Youden cut-off, following R pROC's conventions.

Convention used throughout lesiondx: a **higher score means the positive class**
(pROC ``direction = "<"``); a case is called positive when ``score >= threshold``.
pROC chooses the direction from the class medians unless told; we never flip it, so an
AUC below 0.5 means the score is worse than chance, not that it should be inverted.
Thresholds are pROC's: ``-inf``, the midpoints between consecutive distinct scores, ``+inf``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from ._validate import ArrayLike, as_scores, check_binary


@dataclass(frozen=True)
class RocCurve:
    """ROC points ordered by increasing threshold (so sensitivity decreases).

    ``thresholds`` are in score units; ``sensitivity``/``specificity`` are fractions
    in [0, 1]; ``fpr = 1 - specificity``.
    """

    thresholds: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    n_pos: int
    n_neg: int

    @property
    def fpr(self) -> np.ndarray:
        """False-positive rate (1 - specificity) at each threshold."""
        return 1.0 - self.specificity

    @property
    def tpr(self) -> np.ndarray:
        """True-positive rate (sensitivity) at each threshold."""
        return self.sensitivity


@dataclass(frozen=True)
class YoudenResult:
    """Cut-off maximising sensitivity + specificity - 1 (positive when score >= threshold)."""

    threshold: float
    sensitivity: float
    specificity: float
    youden_index: float
    n_tied: int  # how many thresholds share the best index (the lowest one is reported)


def proc_thresholds(y_score: ArrayLike) -> np.ndarray:
    """pROC's candidate thresholds: -inf, midpoints of sorted distinct scores, +inf."""
    s = as_scores(y_score)
    u = np.unique(s)
    lo = np.concatenate(([-np.inf], u))
    hi = np.concatenate((u, [np.inf]))
    with np.errstate(invalid="ignore", over="ignore"):
        thr = (lo + hi) / 2.0
        big = np.abs(thr) > 1e100
        thr = np.where(big, lo / 2.0 + hi / 2.0, thr)
    # pROC's "near ties" fix: a midpoint of two adjacent doubles may round onto the lower one;
    # for direction "<" it is then moved to the upper one so that the lower score stays negative.
    near = thr[1:-1] == lo[1:-1]
    thr[1:-1][near] = hi[1:-1][near]
    return thr


def roc_curve(y_true: ArrayLike, y_score: ArrayLike) -> RocCurve:
    """Empirical ROC curve at pROC's thresholds (higher score = positive)."""
    y, s = check_binary(y_true, y_score)
    thr = proc_thresholds(s)
    pos_sorted = np.sort(s[y])
    neg_sorted = np.sort(s[~y])
    n_pos, n_neg = pos_sorted.size, neg_sorted.size
    tp = n_pos - np.searchsorted(pos_sorted, thr, side="left")  # cases with score >= thr
    tn = np.searchsorted(neg_sorted, thr, side="left")  # controls with score < thr
    return RocCurve(
        thresholds=thr,
        sensitivity=tp / n_pos,
        specificity=tn / n_neg,
        n_pos=n_pos,
        n_neg=n_neg,
    )


def auc_score(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the empirical ROC curve (Mann-Whitney, ties count 1/2), unitless in [0, 1]."""
    y, s = check_binary(y_true, y_score)
    ranks = rankdata(s)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def youden_threshold(y_true: ArrayLike, y_score: ArrayLike) -> YoudenResult:
    """Youden-optimal threshold exactly as pROC ``coords(r, "best", best.method="youden")``.

    pROC returns every threshold that ties for the maximum; we report the lowest of them
    (pROC's first row), i.e. the most sensitive of the equally good cut-offs.
    """
    curve = roc_curve(y_true, y_score)
    crit = curve.sensitivity + 1.0 * curve.specificity  # pROC: se + r * sp with r = 1
    best = np.flatnonzero(crit == crit.max())
    i = int(best[0])
    return YoudenResult(
        threshold=float(curve.thresholds[i]),
        sensitivity=float(curve.sensitivity[i]),
        specificity=float(curve.specificity[i]),
        youden_index=float(crit[i] - 1.0),
        n_tied=int(best.size),
    )


def apply_threshold(y_score: ArrayLike, threshold: float) -> np.ndarray:
    """Binary predictions ``score >= threshold`` (use a threshold chosen on another set)."""
    return as_scores(y_score) >= threshold
