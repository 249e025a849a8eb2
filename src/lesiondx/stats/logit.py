"""Binary logistic regression by maximum likelihood (Newton–Raphson) with Wald statistics, in numpy + scipy.

What the calibration slope / intercept and the clinical fusion model need, without statsmodels (65 MB and
~15 MB of Python to byte-compile at install time; it stays the reference the tests compare against). The
estimates, covariance (inverse observed information), Wald CIs and p-values are those of statsmodels
``Logit(...).fit(method="newton")`` and ``GLM(..., family=Binomial(), offset=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from scipy.stats import norm


class SeparationError(ValueError):
    """The fitted probabilities reproduce the outcome: the maximum-likelihood estimate does not exist."""


@dataclass(frozen=True)
class LogitFit:
    """A fitted ``logit P(y = 1) = offset + x·params``; ``cov``: inverse of the observed information."""

    params: np.ndarray
    cov: np.ndarray
    llf: float
    n_iter: int

    @property
    def bse(self) -> np.ndarray:
        """Standard errors of ``params``."""
        return np.sqrt(np.diag(self.cov))

    @property
    def pvalues(self) -> np.ndarray:
        """Two-sided Wald p-values (normal reference)."""
        return 2.0 * norm.sf(np.abs(self.params / self.bse))

    @property
    def aic(self) -> float:
        return 2.0 * self.params.size - 2.0 * self.llf

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """Wald confidence intervals, ``(k, 2)``: ``params ± z(1 - alpha/2)·bse``."""
        half = norm.ppf(1.0 - alpha / 2.0) * self.bse
        return np.column_stack([self.params - half, self.params + half])


def _loglik(y: np.ndarray, eta: np.ndarray) -> float:
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def logit_fit(y: np.ndarray, x: np.ndarray, offset: np.ndarray | None = None, *, maxiter: int = 200,
              tol: float = 1e-10) -> LogitFit:
    """Maximum-likelihood fit of ``y`` (0/1, ``(n,)``) on the columns of ``x`` (``(n, k)``, include a constant
    column for an intercept), Newton–Raphson from zero until no parameter moves more than ``tol``.

    Raises :class:`SeparationError` (a ``ValueError``) when the fitted probabilities reproduce ``y`` (perfect
    separation; statsmodels' check), ``ValueError`` when the information matrix is singular or the estimates
    still move after ``maxiter`` steps (quasi-separation: a coefficient grows without bound)."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    off = np.zeros(y.size) if offset is None else np.asarray(offset, dtype=float)
    params = np.zeros(x.shape[1])
    converged, n_iter = False, 0
    for n_iter in range(1, maxiter + 1):
        p = expit(off + x @ params)
        info = (x * (p * (1.0 - p))[:, None]).T @ x
        try:
            step = np.linalg.solve(info, x.T @ (y - p))
        except np.linalg.LinAlgError as exc:
            raise ValueError(f"logistic fit: singular information matrix ({exc})") from None
        params = params + step
        if np.allclose(expit(off + x @ params), y):
            raise SeparationError("perfect separation: the fitted probabilities reproduce the outcome")
        if np.max(np.abs(step)) <= tol:
            converged = True
            break
    if not converged:
        raise ValueError(f"logistic fit did not converge in {maxiter} Newton steps (quasi-separation?)")
    p = expit(off + x @ params)
    info = (x * (p * (1.0 - p))[:, None]).T @ x
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError as exc:
        raise ValueError(f"logistic fit: singular information matrix ({exc})") from None
    return LogitFit(params, cov, _loglik(y, off + x @ params), n_iter)
