"""Calibration of predicted probabilities: binned reliability curve, Hosmer-Lemeshow, Brier."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.stats import chi2

from ._validate import ArrayLike, check_binary


@dataclass(frozen=True)
class CalibrationCurve:
    """Per non-empty bin: mean predicted probability, observed event fraction with its Wilson 95% CI, and count."""

    bin_edges: np.ndarray
    mean_predicted: np.ndarray
    observed: np.ndarray
    counts: np.ndarray
    brier: float  # mean squared error of the probabilities, in [0, 1]
    observed_ci_low: np.ndarray = field(default_factory=lambda: np.empty(0))
    observed_ci_high: np.ndarray = field(default_factory=lambda: np.empty(0))

    def to_dict(self) -> dict[str, list[float]]:
        """The bins as lists (for metrics.json)."""
        return {"mean_predicted": self.mean_predicted.tolist(), "observed": self.observed.tolist(),
                "observed_ci_low": self.observed_ci_low.tolist(), "observed_ci_high": self.observed_ci_high.tolist(),
                "counts": self.counts.tolist(), "ci_method": "Wilson 95% per bin"}


@dataclass(frozen=True)
class HosmerLemeshowResult:
    """Hosmer-Lemeshow goodness-of-fit test (chi-square with ``df = groups - 2``)."""

    statistic: float
    df: int
    p: float
    n_groups: int
    observed: np.ndarray  # events per group
    expected: np.ndarray  # sum of predicted probabilities per group
    counts: np.ndarray


def _check_probabilities(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y, p = check_binary(y_true, y_prob, need_both=False)
    if p.size == 0:
        raise ValueError("no predictions given")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must lie in [0, 1]; calibrate or rescale the scores first")
    return y, p


def calibration_curve(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    n_bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "uniform",
) -> CalibrationCurve:
    """Reliability curve with ``n_bins`` equal-width (or equal-count) bins on [0, 1]; each bin's observed
    fraction carries its Wilson 95% CI."""
    y, p = _check_probabilities(y_true, y_prob)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1)))
        edges[0], edges[-1] = 0.0, 1.0
    else:
        raise ValueError(f"unknown strategy {strategy!r}; use 'uniform' or 'quantile'")
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(idx, minlength=len(edges) - 1)
    sum_p = np.bincount(idx, weights=p, minlength=len(edges) - 1)
    sum_y = np.bincount(idx, weights=y.astype(float), minlength=len(edges) - 1)
    from .binary import wilson_ci

    keep = counts > 0
    cis = [wilson_ci(int(k), int(n)) for k, n in zip(sum_y[keep], counts[keep])]
    return CalibrationCurve(
        bin_edges=edges,
        mean_predicted=sum_p[keep] / counts[keep],
        observed=sum_y[keep] / counts[keep],
        counts=counts[keep],
        brier=float(np.mean((p - y) ** 2)),
        observed_ci_low=np.array([c.ci_low for c in cis]),
        observed_ci_high=np.array([c.ci_high for c in cis]),
    )


def hosmer_lemeshow(y_true: ArrayLike, y_prob: ArrayLike, n_groups: int = 10) -> HosmerLemeshowResult:
    """Hosmer-Lemeshow test over ``n_groups`` groups of sorted predicted risk (deciles by default).

    Rows are sorted by probability and split into groups of (nearly) equal size;
    H = sum (O - E)^2 / (E (1 - E / n_g)), compared with chi-square on ``n_groups - 2`` df.
    """
    y, p = _check_probabilities(y_true, y_prob)
    if n_groups < 3:
        raise ValueError(f"n_groups must be >= 3, got {n_groups}")
    if p.size < n_groups:
        raise ValueError(f"need at least {n_groups} predictions for {n_groups} groups, got {p.size}")
    order = np.argsort(p, kind="stable")
    parts = np.array_split(order, n_groups)
    obs = np.array([y[g].sum() for g in parts], dtype=float)
    exp = np.array([p[g].sum() for g in parts])
    cnt = np.array([g.size for g in parts])
    var = exp * (1.0 - exp / cnt)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(var > 0, (obs - exp) ** 2 / np.where(var > 0, var, 1.0), 0.0)
    stat = float(terms.sum())
    df = n_groups - 2
    return HosmerLemeshowResult(stat, df, float(chi2.sf(stat, df)), n_groups, obs, exp, cnt)


@dataclass(frozen=True)
class RecalibrationResult:
    """Logistic recalibration (Cox 1958): slope b of ``logit P(y) = a + b·logit(p)`` and the
    calibration intercept a of ``logit P(y) = a + offset(logit(p))`` (calibration-in-the-large),
    each with a Wald CI. Perfect calibration: slope 1, intercept 0; slope < 1: predictions too extreme."""

    slope: float
    slope_ci: tuple[float, float]
    intercept: float
    intercept_ci: tuple[float, float]
    n: int
    conf_level: float = 0.95


def logistic_recalibration(
    y_true: ArrayLike, y_prob: ArrayLike, conf_level: float = 0.95, eps: float = 1e-6
) -> RecalibrationResult:
    """Calibration slope and intercept with Wald CIs (maximum likelihood, :mod:`lesiondx.stats.logit`; the same
    figures as statsmodels ``Logit`` and ``GLM(Binomial, offset)``).

    Probabilities are clipped to ``[eps, 1 - eps]`` before the logit. Raises ``ValueError`` when
    the fit does not exist (one class, perfect separation).
    """
    from .logit import logit_fit

    y, p = _check_probabilities(y_true, y_prob)
    if y.all() or not y.any():
        raise ValueError("calibration slope needs both classes")
    if np.unique(p).size < 3:
        raise ValueError(f"calibration slope not estimable: the scores take {np.unique(p).size} value(s) "
                         "(hard 0/1 calls or a constant are not probabilities to recalibrate)")
    lp = np.log(np.clip(p, eps, 1 - eps) / (1 - np.clip(p, eps, 1 - eps)))
    alpha = 1.0 - conf_level
    with np.errstate(over="ignore"):
        try:
            full = logit_fit(y.astype(float), np.column_stack([np.ones(y.size), lp]))
            cil = logit_fit(y.astype(float), np.ones((y.size, 1)), offset=lp)
        except ValueError as exc:
            raise ValueError(f"calibration slope not estimable ({exc})") from None
    slope_ci = np.asarray(full.conf_int(alpha=alpha))[1]
    int_ci = np.asarray(cil.conf_int(alpha=alpha))[0]
    values = [float(full.params[1]), *map(float, slope_ci), float(cil.params[0]), *map(float, int_ci)]
    if not all(np.isfinite(values)) or abs(values[0]) > 1e3:
        raise ValueError("calibration slope not estimable (perfect separation?)")
    return RecalibrationResult(values[0], (values[1], values[2]), values[3], (values[4], values[5]), int(y.size),
                               conf_level)
