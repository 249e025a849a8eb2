"""Decision curve analysis (Vickers & Elkin 2006): net benefit over threshold probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import ArrayLike, as_scores, check_binary


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


def net_benefit(y_true: ArrayLike, y_prob: ArrayLike, thresholds: ArrayLike | None = None) -> DecisionCurve:
    """Closed form NB(t) = TP/n - FP/n * t / (1 - t); treat-all uses every case as positive.

    Default thresholds are 0.00, 0.01, ..., 0.99 (as the ``dcurves`` package).
    """
    y, p = check_binary(y_true, y_prob, need_both=False)
    if p.size == 0:
        raise ValueError("no predictions given")
    t = np.round(np.arange(0.0, 1.0, 0.01), 2) if thresholds is None else as_scores(thresholds, "thresholds")
    if np.any((t < 0) | (t >= 1)):
        raise ValueError("thresholds must lie in [0, 1)")
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
