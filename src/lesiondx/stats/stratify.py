"""Per-subgroup AUC tables (lesion size band, centre, phase, ...) with DeLong tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from ._validate import binarize_labels
from .delong import auc_delong, delong_unpaired_test
from .roc import auc_score

STRATUM_COLUMNS = ["stratum", "level", "n", "n_pos", "n_neg", "auc", "ci_low", "ci_high", "compared_with", "p"]


def bands(values: Sequence[float] | pd.Series, edges: Sequence[float], unit: str = "") -> pd.Series:
    """Cut a numeric column into labelled bands, e.g. lesion size edges (0, 10, 20, inf) mm
    → "<10 mm", "10-20 mm", ">=20 mm". Intervals are left-closed [a, b)."""
    e = list(edges)
    if len(e) < 2 or any(b <= a for a, b in zip(e, e[1:])):
        raise ValueError(f"edges must be increasing with at least two values, got {e}")
    sfx = f" {unit}" if unit else ""
    labels = []
    for a, b in zip(e, e[1:]):
        if np.isneginf(a) or a == e[0] and a <= 0:
            labels.append(f"<{b:g}{sfx}")
        elif np.isposinf(b):
            labels.append(f">={a:g}{sfx}")
        else:
            labels.append(f"{a:g}-{b:g}{sfx}")
    return pd.cut(pd.Series(values, dtype=float), bins=e, right=False, labels=labels)


def _auc_row(y: np.ndarray, s: np.ndarray) -> tuple[float, float, float]:
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos >= 2 and n_neg >= 2:
        r = auc_delong(y, s)
        return r.auc, r.ci_low, r.ci_high
    if n_pos >= 1 and n_neg >= 1:
        return auc_score(y, s), float("nan"), float("nan")
    return float("nan"), float("nan"), float("nan")


def _p_value(y1: np.ndarray, s1: np.ndarray, y2: np.ndarray, s2: np.ndarray) -> float:
    """Unpaired DeLong p; NaN when a group has < 2 cases of a class or a DeLong variance of 0 (perfect
    separation: the test would take that group's AUC as known exactly and give a tiny p from a few cases)."""
    if min(y1.sum(), (~y1).sum(), y2.sum(), (~y2).sum()) < 2:
        return float("nan")
    if auc_delong(y1, s1).se == 0.0 or auc_delong(y2, s2).se == 0.0:
        return float("nan")
    return delong_unpaired_test(y1, s1, y2, s2).p


def _level_order(col: pd.Series, levels: np.ndarray) -> list[str]:
    """Categorical columns keep their category order; others are sorted; "missing" last."""
    present = set(levels.tolist())
    if isinstance(col.dtype, pd.CategoricalDtype):
        order = [str(c) for c in col.cat.categories if str(c) in present]
    else:
        order = sorted(present - {"missing"})
    return order + (["missing"] if "missing" in present and "missing" not in order else [])


def stratified_auc_table(
    df: pd.DataFrame,
    by: str | Sequence[str],
    *,
    label_col: str = "label",
    score_col: str = "score",
    positive: Any = 1,
    compare: Literal["rest", "first"] | None = "rest",
) -> pd.DataFrame:
    """One row per level of each column in ``by``: n, AUC with DeLong CI and a p-value.

    ``compare="rest"`` tests each level against all other rows (unpaired DeLong);
    ``"first"`` against the first level in sorted order; ``None`` skips tests. Levels with
    fewer than 2 cases of a class get NaN CI/p (AUC is still given with at least one of each); a level (or its
    reference) with a DeLong variance of 0 (perfectly separated) gets NaN p.
    Missing stratum values form a level named "missing".
    """
    cols = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [label_col, score_col, *cols] if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; available: {list(df.columns)}")
    y = binarize_labels(df[label_col], positive)
    s = pd.to_numeric(df[score_col], errors="coerce").to_numpy(dtype=float)
    if np.isnan(s).any():
        raise ValueError(f"column {score_col!r} has missing or non-numeric values")
    rows: list[dict[str, Any]] = []
    for col in cols:
        levels = df[col].astype(object).where(df[col].notna(), "missing").astype(str).to_numpy()
        uniq = _level_order(df[col], levels)
        for lev in uniq:
            m = levels == lev
            if compare == "rest":
                ref, ref_name = ~m, "rest"
            elif compare == "first":
                ref, ref_name = levels == uniq[0], str(uniq[0])
            else:
                ref, ref_name = None, ""
            auc, lo, hi = _auc_row(y[m], s[m])
            p = float("nan")
            if ref is not None and ref.any() and not np.array_equal(ref, m):
                p = _p_value(y[m], s[m], y[ref], s[ref])
            rows.append(
                dict(
                    stratum=col,
                    level=lev,
                    n=int(m.sum()),
                    n_pos=int(y[m].sum()),
                    n_neg=int((~y[m]).sum()),
                    auc=auc,
                    ci_low=lo,
                    ci_high=hi,
                    compared_with=ref_name if ref is not None else "",
                    p=p,
                )
            )
    return pd.DataFrame(rows, columns=STRATUM_COLUMNS)
