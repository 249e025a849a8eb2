"""Confusion matrices and threshold metrics with Wilson score confidence intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from ._validate import ArrayLike, as_binary, check_binary
from .roc import apply_threshold


@dataclass(frozen=True)
class ProportionCI:
    """A proportion k/n (fraction in [0, 1]) with its confidence interval; NaN when n == 0."""

    estimate: float
    ci_low: float
    ci_high: float
    k: int
    n: int


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of true/false positives/negatives."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        """Total number of cases."""
        return self.tp + self.fp + self.tn + self.fn

    def as_array(self) -> np.ndarray:
        """2x2 array [[tn, fp], [fn, tp]] (rows = truth neg/pos, columns = predicted neg/pos)."""
        return np.array([[self.tn, self.fp], [self.fn, self.tp]])


@dataclass(frozen=True)
class BinaryMetrics:
    """Threshold metrics; every proportion carries a Wilson CI. ``f1`` is a plain fraction."""

    confusion: ConfusionMatrix
    accuracy: ProportionCI
    sensitivity: ProportionCI
    specificity: ProportionCI
    ppv: ProportionCI
    npv: ProportionCI
    f1: float

    @property
    def precision(self) -> ProportionCI:
        """Same as PPV."""
        return self.ppv

    @property
    def recall(self) -> ProportionCI:
        """Same as sensitivity."""
        return self.sensitivity


def wilson_ci(k: int, n: int, conf_level: float = 0.95) -> ProportionCI:
    """Wilson score interval for k successes out of n (no continuity correction)."""
    k, n = int(k), int(n)
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        nan = float("nan")
        return ProportionCI(nan, nan, nan, 0, 0)
    z = float(norm.ppf(1.0 - (1.0 - conf_level) / 2.0))
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return ProportionCI(p, max(0.0, centre - half), min(1.0, centre + half), k, n)


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike) -> ConfusionMatrix:
    """Confusion matrix of bool/0-1 predictions against bool/0-1 truth."""
    y = as_binary(y_true)
    p = as_binary(y_pred, "y_pred")
    if y.shape != p.shape:
        raise ValueError(f"length mismatch: y_true has {y.size} values, y_pred has {p.size}")
    return ConfusionMatrix(
        tp=int(np.sum(y & p)), fp=int(np.sum(~y & p)), tn=int(np.sum(~y & ~p)), fn=int(np.sum(y & ~p))
    )


def metrics_from_confusion(cm: ConfusionMatrix, conf_level: float = 0.95) -> BinaryMetrics:
    """Accuracy, sensitivity, specificity, PPV, NPV (Wilson CIs) and F1 from counts."""
    f1_den = 2 * cm.tp + cm.fp + cm.fn
    return BinaryMetrics(
        confusion=cm,
        accuracy=wilson_ci(cm.tp + cm.tn, cm.n, conf_level),
        sensitivity=wilson_ci(cm.tp, cm.tp + cm.fn, conf_level),
        specificity=wilson_ci(cm.tn, cm.tn + cm.fp, conf_level),
        ppv=wilson_ci(cm.tp, cm.tp + cm.fp, conf_level),
        npv=wilson_ci(cm.tn, cm.tn + cm.fn, conf_level),
        f1=2 * cm.tp / f1_den if f1_den else float("nan"),
    )


def binary_metrics(y_true: ArrayLike, y_pred: ArrayLike, conf_level: float = 0.95) -> BinaryMetrics:
    """Threshold metrics of bool/0-1 predictions."""
    return metrics_from_confusion(confusion_matrix(y_true, y_pred), conf_level)


def metrics_at_threshold(
    y_true: ArrayLike, y_score: ArrayLike, threshold: float, conf_level: float = 0.95
) -> BinaryMetrics:
    """Metrics when calling ``score >= threshold`` positive (threshold may come from another set)."""
    y, s = check_binary(y_true, y_score, need_both=False)
    return binary_metrics(y, apply_threshold(s, threshold), conf_level)
