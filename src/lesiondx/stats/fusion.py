"""Logistic-regression fusion of a model score with clinical factors (maximum likelihood, :mod:`.logit`).

Workflow: ``univariate_screen`` keeps candidates with p < 0.1, ``fit_logistic`` fits the
multivariate model and reports odds ratios (per one unit of each predictor) with Wald 95% CIs,
and ``LogisticModel.predict`` scores new patients. Text columns are dummy-coded against
their first level in sorted order.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from ._validate import binarize_labels
from .logit import logit_fit


@dataclass(frozen=True)
class OddsRatio:
    """Odds ratio per one unit of ``term`` (per level vs reference for dummy terms)."""

    term: str
    coef: float
    se: float
    odds_ratio: float
    ci_low: float
    ci_high: float
    p: float


@dataclass(frozen=True)
class LogisticModel:
    """A fitted logistic model: coefficients on the log-odds scale, intercept first."""

    outcome: str
    variables: tuple[str, ...]  # source columns
    terms: tuple[str, ...]  # design columns after dummy coding (no intercept)
    coef: np.ndarray
    cov: np.ndarray
    odds_ratios: tuple[OddsRatio, ...]
    levels: dict[str, tuple[str, ...]] = field(default_factory=dict)  # categorical levels, ref first
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # numeric min/max in training
    n: int = 0
    llf: float = float("nan")
    aic: float = float("nan")

    def design(self, df: pd.DataFrame) -> np.ndarray:
        """Design matrix (with intercept) for new rows, coded as in training."""
        x, _, _ = _encode(df, self.variables, self.levels)
        return np.column_stack((np.ones(len(df)), x[list(self.terms)].to_numpy(dtype=float)))

    def linear_predictor(self, df: pd.DataFrame) -> np.ndarray:
        """Log-odds for each row."""
        return self.design(df) @ self.coef

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predicted probability of the positive outcome for each row of ``df``."""
        return 1.0 / (1.0 + np.exp(-self.linear_predictor(df)))

    def table(self) -> pd.DataFrame:
        """Odds-ratio table: term, OR, 95% CI, p."""
        return pd.DataFrame([o.__dict__ for o in self.odds_ratios])


@dataclass(frozen=True)
class FusionResult:
    """Univariate screen and the multivariate fusion model built from the selected variables."""

    screen: pd.DataFrame
    model: LogisticModel


def _encode(
    df: pd.DataFrame, variables: Sequence[str], levels: dict[str, tuple[str, ...]] | None = None
) -> tuple[pd.DataFrame, dict[str, tuple[str, ...]], dict[str, tuple[float, float]]]:
    missing = [v for v in variables if v not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; available: {list(df.columns)}")
    fixed = levels or {}
    cols: dict[str, np.ndarray] = {}
    out_levels: dict[str, tuple[str, ...]] = {}
    ranges: dict[str, tuple[float, float]] = {}
    for v in variables:
        ser = df[v]
        if ser.isna().any():
            raise ValueError(f"column {v!r} has {int(ser.isna().sum())} missing value(s)")
        if v not in fixed and (pd.api.types.is_numeric_dtype(ser) or pd.api.types.is_bool_dtype(ser)):
            vals = ser.to_numpy(dtype=float)
            cols[v] = vals
            ranges[v] = (float(vals.min()), float(vals.max()))
            continue
        labs = ser.astype(str)
        lev = fixed.get(v) or tuple(sorted(labs.unique()))
        unknown = set(labs.unique()) - set(lev)
        if unknown:
            raise ValueError(f"column {v!r} has level(s) {sorted(unknown)} not seen in training")
        out_levels[v] = lev
        for level in lev[1:]:
            cols[f"{v}[{level}]"] = (labs == level).to_numpy(dtype=float)
    return pd.DataFrame(cols, index=df.index), out_levels, ranges


def fit_logistic(
    df: pd.DataFrame, outcome: str, variables: Sequence[str], *, positive: Any = 1, conf_level: float = 0.95
) -> LogisticModel:
    """Fit ``outcome ~ variables`` by maximum likelihood (Newton–Raphson; the estimates of statsmodels ``Logit``)."""
    if outcome not in df.columns:
        raise ValueError(f"missing outcome column {outcome!r}")
    if not variables:
        raise ValueError("need at least one predictor variable")
    y = binarize_labels(df[outcome], positive).astype(float)
    if y.min() == y.max():
        raise ValueError(f"outcome {outcome!r} has only one class")
    x, levels, ranges = _encode(df, variables)
    exog = np.column_stack([np.ones(len(x)), x.to_numpy(dtype=float)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # exp overflow while a separated fit diverges
        try:
            res = logit_fit(y, exog)
        except ValueError as exc:
            raise ValueError(f"logistic fit failed for {list(variables)}: {exc}") from None
    ci = res.conf_int(alpha=1.0 - conf_level)
    params, bse, pvals = res.params, res.bse, res.pvalues
    ors = tuple(
        OddsRatio(
            term=str(name),
            coef=float(params[i]),
            se=float(bse[i]),
            odds_ratio=float(np.exp(params[i])),
            ci_low=float(np.exp(ci[i, 0])),
            ci_high=float(np.exp(ci[i, 1])),
            p=float(pvals[i]),
        )
        for i, name in enumerate(["const", *x.columns])
        if i > 0
    )
    return LogisticModel(
        outcome=outcome,
        variables=tuple(variables),
        terms=tuple(x.columns),
        coef=params,
        cov=res.cov,
        odds_ratios=ors,
        levels=levels,
        ranges=ranges,
        n=int(len(y)),
        llf=float(res.llf),
        aic=float(res.aic),
    )


def _null_llf(y: np.ndarray) -> float:
    p = y.mean()
    return float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))


def univariate_screen(
    df: pd.DataFrame, outcome: str, candidates: Sequence[str], *, positive: Any = 1, p_threshold: float = 0.1
) -> pd.DataFrame:
    """Fit one logistic model per candidate; keep those with p < ``p_threshold``.

    Columns: variable, term, odds_ratio, ci_low, ci_high, p (Wald, per term), p_variable
    (Wald for one-term variables, likelihood-ratio test for multi-level ones), selected.
    A candidate whose fit fails (e.g. perfect separation) is listed with NaNs, not selected.
    """
    y = binarize_labels(df[outcome], positive).astype(float)
    rows = []
    for var in candidates:
        try:
            m = fit_logistic(df, outcome, [var], positive=positive)
        except ValueError as exc:
            rows.append(
                dict(
                    variable=var,
                    term=var,
                    odds_ratio=np.nan,
                    ci_low=np.nan,
                    ci_high=np.nan,
                    p=np.nan,
                    p_variable=np.nan,
                    selected=False,
                    note=str(exc),
                )
            )
            continue
        if len(m.odds_ratios) == 1:
            p_var = m.odds_ratios[0].p
        else:
            p_var = float(chi2.sf(2.0 * (m.llf - _null_llf(y)), len(m.odds_ratios)))
        for o in m.odds_ratios:
            rows.append(
                dict(
                    variable=var,
                    term=o.term,
                    odds_ratio=o.odds_ratio,
                    ci_low=o.ci_low,
                    ci_high=o.ci_high,
                    p=o.p,
                    p_variable=p_var,
                    selected=p_var < p_threshold,
                    note="",
                )
            )
    return pd.DataFrame(rows)


def fusion_model(
    df: pd.DataFrame,
    outcome: str,
    score_col: str,
    clinical: Sequence[str],
    *,
    positive: Any = 1,
    p_threshold: float = 0.1,
    force_score: bool = True,
) -> FusionResult:
    """Screen ``score_col`` and ``clinical`` univariately, then fit the multivariate model on the
    selected variables (the model score is always kept when ``force_score``)."""
    screen = univariate_screen(df, outcome, [score_col, *clinical], positive=positive, p_threshold=p_threshold)
    chosen = list(dict.fromkeys(screen.loc[screen["selected"], "variable"]))
    if force_score and score_col not in chosen:
        chosen.insert(0, score_col)
    if not chosen:
        raise ValueError(f"no variable passed the univariate screen at p < {p_threshold}")
    return FusionResult(screen=screen, model=fit_logistic(df, outcome, chosen, positive=positive))
