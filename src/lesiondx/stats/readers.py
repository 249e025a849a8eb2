"""Agreement and paired tests for reader studies: Cohen/Fleiss kappa, McNemar, Mann-Whitney U,
and reading-time summaries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import binom, chi2, mannwhitneyu, norm
from scipy.stats import t as student_t

from ._validate import ArrayLike, as_binary, as_scores
from .bootstrap import bootstrap_statistic


@dataclass(frozen=True)
class KappaResult:
    """Chance-corrected agreement (unitless, <= 1) with asymptotic SE and normal CI."""

    kappa: float
    se: float
    ci_low: float
    ci_high: float
    observed_agreement: float
    expected_agreement: float
    n: int


@dataclass(frozen=True)
class McNemarResult:
    """McNemar test on paired binary outcomes; ``b`` = only first true, ``c`` = only second true."""

    b: int
    c: int
    statistic: float
    p: float
    method: Literal["exact", "chi2"]


@dataclass(frozen=True)
class MannWhitneyResult:
    """Two-sided Mann-Whitney U test; ``auc`` = U / (n1 n2) = P(x > y) + P(x = y) / 2."""

    u: float
    p: float
    n1: int
    n2: int
    auc: float


@dataclass(frozen=True)
class TimeSummary:
    """Mean and median of durations (same unit as the input, e.g. seconds) with CIs."""

    n: int
    mean: float
    mean_ci_low: float
    mean_ci_high: float
    median: float
    median_ci_low: float
    median_ci_high: float
    method: str


def _zcrit(conf_level: float) -> float:
    return float(norm.ppf(1.0 - (1.0 - conf_level) / 2.0))


def cohen_kappa(rater1: ArrayLike, rater2: ArrayLike, conf_level: float = 0.95) -> KappaResult:
    """Unweighted Cohen kappa of two raters' categorical labels on the same cases.

    SE is the large-sample formula of Fleiss, Cohen & Everitt (1969), as statsmodels.
    """
    a = np.asarray(rater1).astype(str)
    b = np.asarray(rater2).astype(str)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"rater arrays must be 1-D of equal length, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("no cases to compare")
    cats, inv = np.unique(np.concatenate((a, b)), return_inverse=True)
    k, n = cats.size, a.size
    table = np.zeros((k, k))
    np.add.at(table, (inv[:n], inv[n:]), 1.0)
    p = table / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    po, pe = float(np.trace(p)), float(rows @ cols)
    if pe == 1.0:
        raise ValueError("kappa is undefined when both raters use a single identical category")
    kappa = (po - pe) / (1.0 - pe)
    term_a = np.sum(np.diag(p) * (1.0 - (rows + cols) * (1.0 - kappa)) ** 2)
    off = p * (cols[:, None] + rows[None, :]) ** 2
    term_b = (1.0 - kappa) ** 2 * (off.sum() - np.trace(off))
    term_c = (kappa - pe * (1.0 - kappa)) ** 2
    se = float(np.sqrt(max(term_a + term_b - term_c, 0.0) / (1.0 - pe) ** 2 / n))
    half = _zcrit(conf_level) * se
    return KappaResult(float(kappa), se, max(-1.0, kappa - half), min(1.0, kappa + half), po, pe, n)  # kappa ≤ 1


def fleiss_kappa(ratings: ArrayLike) -> float:
    """Fleiss kappa for a (subjects x raters) array of category labels, every subject
    rated by the same number (>= 2) of raters."""
    r = np.asarray(ratings).astype(str)
    if r.ndim != 2 or r.shape[1] < 2 or r.shape[0] < 1:
        raise ValueError(f"ratings must be (subjects, raters>=2), got shape {r.shape}")
    _, inv = np.unique(r, return_inverse=True)
    inv = inv.reshape(r.shape)
    counts = np.zeros((r.shape[0], int(inv.max()) + 1))
    np.add.at(counts, (np.repeat(np.arange(r.shape[0]), r.shape[1]), inv.ravel()), 1.0)
    return fleiss_kappa_from_counts(counts)


def fleiss_kappa_from_counts(counts: ArrayLike) -> float:
    """Fleiss kappa from a (subjects x categories) table of how many raters chose each category."""
    c = np.asarray(counts, dtype=float)
    n_raters = c.sum(axis=1)
    if np.any(n_raters != n_raters[0]) or n_raters[0] < 2:
        raise ValueError("every subject needs the same number (>= 2) of ratings")
    m = n_raters[0]
    p_j = c.sum(axis=0) / c.sum()
    p_i = (np.sum(c * c, axis=1) - m) / (m * (m - 1))
    pe = float(np.sum(p_j**2))
    if pe == 1.0:
        raise ValueError("Fleiss kappa is undefined when all ratings fall in one category")
    return float((p_i.mean() - pe) / (1.0 - pe))


def mcnemar_test(outcome1: ArrayLike, outcome2: ArrayLike, exact: bool | None = None) -> McNemarResult:
    """McNemar test of paired binary outcomes (e.g. correct without vs with AI).

    ``exact=None`` uses the exact binomial test when b + c < 25, else chi-square with
    continuity correction. Returns p = 1 when there are no discordant pairs.
    """
    x1, x2 = as_binary(outcome1, "outcome1"), as_binary(outcome2, "outcome2")
    if x1.shape != x2.shape:
        raise ValueError(f"length mismatch: {x1.size} vs {x2.size} paired outcomes")
    b, c = int(np.sum(x1 & ~x2)), int(np.sum(~x1 & x2))
    use_exact = (b + c < 25) if exact is None else exact
    if b + c == 0:
        return McNemarResult(b, c, 0.0, 1.0, "exact" if use_exact else "chi2")
    if use_exact:
        stat = float(min(b, c))
        p = float(min(1.0, 2.0 * binom.cdf(min(b, c), b + c, 0.5)))
        return McNemarResult(b, c, stat, p, "exact")
    stat = float((abs(b - c) - 1.0) ** 2 / (b + c))
    return McNemarResult(b, c, stat, float(chi2.sf(stat, 1)), "chi2")


def mann_whitney(x: ArrayLike, y: ArrayLike) -> MannWhitneyResult:
    """Two-sided Mann-Whitney U test (scipy, tie-corrected normal or exact as scipy chooses)."""
    a, b = as_scores(x, "x"), as_scores(y, "y")
    if a.size == 0 or b.size == 0:
        raise ValueError("both samples need at least one value")
    res = mannwhitneyu(a, b, alternative="two-sided")
    u = float(res.statistic)
    return MannWhitneyResult(u, float(res.pvalue), a.size, b.size, u / (a.size * b.size))


def summarize_times(
    values: ArrayLike,
    *,
    method: Literal["t", "bootstrap"] = "t",
    conf_level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> TimeSummary:
    """Mean (Student t or bootstrap CI) and median (bootstrap CI) of durations or differences."""
    v = as_scores(values, "values")
    if v.size < 2:
        raise ValueError(f"need at least 2 values, got {v.size}")
    mean = float(v.mean())
    if method == "t":
        half = float(student_t.ppf(1 - (1 - conf_level) / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
        m_lo, m_hi = mean - half, mean + half
    elif method == "bootstrap":
        ci = bootstrap_statistic(lambda i: v[i].mean(), v.size, n_boot=n_boot, seed=seed, conf_level=conf_level)
        m_lo, m_hi = ci.ci_low, ci.ci_high
    else:
        raise ValueError(f"unknown method {method!r}; use 't' or 'bootstrap'")
    med = bootstrap_statistic(lambda i: np.median(v[i]), v.size, n_boot=n_boot, seed=seed, conf_level=conf_level)
    return TimeSummary(int(v.size), mean, float(m_lo), float(m_hi), med.estimate, med.ci_low, med.ci_high, method)
