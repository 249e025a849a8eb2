"""DeLong variance of the AUC and DeLong tests comparing two AUCs.

Fast DeLong (Sun & Xu 2014): structural components from midranks, O(n log n) per score,
vectorised over several scores measured on the same cases. Results match R pROC 1.18
(``ci.auc(method="delong")``, ``var(method="delong")``, ``roc.test(method="delong")``)
with ``direction="<"`` (higher score = positive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata
from scipy.stats import t as student_t

from ._validate import ArrayLike, as_scores, check_binary


@dataclass(frozen=True)
class AucResult:
    """AUC (unitless, [0, 1]) with its DeLong standard error and confidence interval."""

    auc: float
    ci_low: float
    ci_high: float
    se: float
    n_pos: int
    n_neg: int
    conf_level: float = 0.95


@dataclass(frozen=True)
class PairedDelongResult:
    """Paired DeLong test of AUC1 - AUC2 on the same cases (two-sided z test)."""

    auc1: float
    auc2: float
    diff: float
    z: float
    p: float
    diff_ci_low: float
    diff_ci_high: float


@dataclass(frozen=True)
class UnpairedDelongResult:
    """Unpaired DeLong test of AUC1 - AUC2 on independent samples (Welch-type t, as pROC)."""

    auc1: float
    auc2: float
    diff: float
    statistic: float
    df: float
    p: float


@dataclass(frozen=True)
class _Placements:
    theta: np.ndarray  # (k,) AUC per score
    v10: np.ndarray  # (k, m) placement of each case among the controls
    v01: np.ndarray  # (k, n) placement of each control among the cases


def _placements(y: np.ndarray, scores: np.ndarray) -> _Placements:
    """Structural components for scores of shape (k, N) with labels y of shape (N,)."""
    x = scores[:, y]  # cases
    z = scores[:, ~y]  # controls
    m, n = x.shape[1], z.shape[1]
    tx = rankdata(x, axis=1)
    tz = rankdata(z, axis=1)
    tall = rankdata(np.concatenate((x, z), axis=1), axis=1)
    v10 = (tall[:, :m] - tx) / n
    v01 = 1.0 - (tall[:, m:] - tz) / m
    theta = (tall[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    return _Placements(theta=theta, v10=v10, v01=v01)


def _covariance(p: _Placements) -> np.ndarray:
    """DeLong covariance matrix S = S10/m + S01/n of the k AUCs."""
    m, n = p.v10.shape[1], p.v01.shape[1]
    d10 = p.v10 - p.theta[:, None]
    d01 = p.v01 - p.theta[:, None]
    s10 = d10 @ d10.T / (m - 1)
    s01 = d01 @ d01.T / (n - 1)
    return s10 / m + s01 / n


def _z(conf_level: float) -> float:
    if not 0.0 < conf_level < 1.0:
        raise ValueError(f"conf_level must be in (0, 1), got {conf_level}")
    return float(norm.ppf(1.0 - (1.0 - conf_level) / 2.0))


def _need_two_per_class(y: np.ndarray) -> None:
    if y.sum() < 2 or (~y).sum() < 2:
        raise ValueError("DeLong variance needs at least 2 positives and 2 negatives")


def auc_delong(y_true: ArrayLike, y_score: ArrayLike, conf_level: float = 0.95) -> AucResult:
    """AUC with DeLong SE and normal CI clipped to [0, 1] (pROC ``ci.auc(method="delong")``)."""
    y, s = check_binary(y_true, y_score)
    _need_two_per_class(y)
    p = _placements(y, s[None, :])
    theta = float(p.theta[0])
    se = float(np.sqrt(_covariance(p)[0, 0]))
    half = _z(conf_level) * se
    return AucResult(
        auc=theta,
        ci_low=max(0.0, theta - half),
        ci_high=min(1.0, theta + half),
        se=se,
        n_pos=int(y.sum()),
        n_neg=int((~y).sum()),
        conf_level=conf_level,
    )


def delong_paired_test(
    y_true: ArrayLike, y_score1: ArrayLike, y_score2: ArrayLike, conf_level: float = 0.95
) -> PairedDelongResult:
    """Two-sided DeLong test for two correlated AUCs (pROC ``roc.test(paired=TRUE)``)."""
    y, s1 = check_binary(y_true, y_score1)
    s2 = as_scores(y_score2, "y_score2")
    if s2.shape != s1.shape:
        raise ValueError(f"length mismatch: y_score1 has {s1.size} values, y_score2 has {s2.size}")
    _need_two_per_class(y)
    p = _placements(y, np.vstack((s1, s2)))
    cov = _covariance(p)
    diff = float(p.theta[0] - p.theta[1])
    sig = float(np.sqrt(max(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1], 0.0)))
    if sig == 0.0:
        z = 0.0 if diff == 0.0 else float(np.sign(diff) * np.inf)
    else:
        z = diff / sig
    half = _z(conf_level) * sig
    return PairedDelongResult(
        auc1=float(p.theta[0]),
        auc2=float(p.theta[1]),
        diff=diff,
        z=z,
        p=float(2.0 * norm.cdf(-abs(z))),
        diff_ci_low=max(-1.0, diff - half),  # an AUC difference lies in [-1, 1] (as the AUC CI is kept in [0, 1])
        diff_ci_high=min(1.0, diff + half),
    )


def delong_unpaired_test(
    y_true1: ArrayLike, y_score1: ArrayLike, y_true2: ArrayLike, y_score2: ArrayLike
) -> UnpairedDelongResult:
    """DeLong test for AUCs from two independent samples (pROC ``roc.test(paired=FALSE)``).

    Statistic D = (AUC1 - AUC2) / sqrt(V1 + V2) with Welch-Satterthwaite degrees of freedom
    and a two-sided Student t p-value, as in pROC.
    """
    y1, s1 = check_binary(y_true1, y_score1)
    y2, s2 = check_binary(y_true2, y_score2)
    _need_two_per_class(y1)
    _need_two_per_class(y2)
    p1 = _placements(y1, s1[None, :])
    p2 = _placements(y2, s2[None, :])
    v1 = float(_covariance(p1)[0, 0])
    v2 = float(_covariance(p2)[0, 0])
    diff = float(p1.theta[0] - p2.theta[0])
    tot = v1 + v2
    if tot == 0.0:
        stat, df = (0.0 if diff == 0.0 else float(np.sign(diff) * np.inf)), float("nan")
        pval = 1.0 if diff == 0.0 else 0.0
    else:
        stat = diff / np.sqrt(tot)
        df = tot**2 / (v1**2 / (y1.size - 1) + v2**2 / (y2.size - 1))
        pval = float(2.0 * student_t.cdf(-abs(stat), df))
    return UnpairedDelongResult(
        auc1=float(p1.theta[0]),
        auc2=float(p2.theta[0]),
        diff=diff,
        statistic=float(stat),
        df=float(df),
        p=pval,
    )
