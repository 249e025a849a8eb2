"""Decision curve analysis (Vickers & Elkin 2006): net benefit over threshold probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import ArrayLike, as_scores, check_binary
from .bootstrap import resample_weights


@dataclass(frozen=True)
class DecisionCurve:
    """Net benefit (true positives per patient, net of weighted false positives) per threshold.

    ``thresholds`` are probabilities in [0, 1); a patient is treated when ``prob >= t``.
    """

    thresholds: np.ndarray
    model: np.ndarray
    treat_all: np.ndarray
    treat_none: np.ndarray
    prevalence: float
    n: int


@dataclass(frozen=True)
class NetBenefitBand:
    """Percentile bootstrap interval of the model's net benefit at each threshold (cases, or whole patients,
    resampled)."""

    thresholds: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_boot: int
    conf_level: float


def _thresholds(thresholds: ArrayLike | None) -> np.ndarray:
    t = np.round(np.arange(0.0, 1.0, 0.01), 2) if thresholds is None else as_scores(thresholds, "thresholds")
    if np.any((t < 0) | (t >= 1)):
        raise ValueError("thresholds must lie in [0, 1)")
    return t


def net_benefit(y_true: ArrayLike, y_prob: ArrayLike, thresholds: ArrayLike | None = None) -> DecisionCurve:
    """Closed form NB(t) = TP/n - FP/n * t / (1 - t); treat-all uses every case as positive.

    Default thresholds are 0.00, 0.01, ..., 0.99 (as the ``dcurves`` package).
    """
    y, p = check_binary(y_true, y_prob, need_both=False)
    if p.size == 0:
        raise ValueError("no predictions given")
    t = _thresholds(thresholds)
    n = p.size
    prevalence = float(y.mean())
    odds = t / (1.0 - t)
    pos_sorted = np.sort(p[y])
    neg_sorted = np.sort(p[~y])
    tp = pos_sorted.size - np.searchsorted(pos_sorted, t, side="left")
    fp = neg_sorted.size - np.searchsorted(neg_sorted, t, side="left")
    return DecisionCurve(
        thresholds=t,
        model=tp / n - fp / n * odds,
        treat_all=prevalence - (1.0 - prevalence) * odds,
        treat_none=np.zeros_like(t),
        prevalence=prevalence,
        n=n,
    )


def net_benefit_band(y_true: ArrayLike, y_prob: ArrayLike, thresholds: ArrayLike | None = None, *,
                     groups: ArrayLike | None = None, n_boot: int = 2000, seed: int = 0,
                     conf_level: float = 0.95) -> NetBenefitBand:
    """Bootstrap interval of :func:`net_benefit`'s model curve: cases (or, with ``groups``, whole patients) drawn
    with replacement ``n_boot`` times, the ``conf_level`` percentile interval per threshold."""
    y, p = check_binary(y_true, y_prob, need_both=False)
    if p.size == 0:
        raise ValueError("no predictions given")
    t = _thresholds(thresholds)
    treated = p[:, None] >= t[None, :]  # (n, thresholds)
    true_pos, false_pos = (y[:, None] & treated).astype(float), (~y[:, None] & treated).astype(float)
    odds = t / (1.0 - t)
    curves = []
    for weights in resample_weights(p.size, groups=groups, n_boot=n_boot, seed=seed):
        total = weights.sum(axis=1, keepdims=True)
        curves.append((weights @ true_pos - (weights @ false_pos) * odds) / total)
    values = np.vstack(curves)
    alpha = (1.0 - conf_level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha], axis=0)
    return NetBenefitBand(t, low, high, int(values.shape[0]), conf_level)
