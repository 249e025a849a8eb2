"""Aggregate image-level predictions to lesion or patient level."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

BinaryRule = Literal["mean", "max", "any"]


def _check_columns(df: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; available: {list(df.columns)}")


def _group_labels(df: pd.DataFrame, group_col: str, label_col: str | None) -> pd.Series | None:
    if label_col is None:
        return None
    nunique = df.groupby(group_col, sort=True)[label_col].nunique(dropna=False)
    bad = nunique[nunique > 1]
    if len(bad):
        raise ValueError(
            f"label column {label_col!r} is not constant within {group_col!r} for "
            f"{len(bad)} group(s), e.g. {list(bad.index[:3])}"
        )
    return df.groupby(group_col, sort=True)[label_col].first()


def require_one_label_per_patient(df: pd.DataFrame, patient_col: str, y_col: str, label_col: str,
                                  purpose: str = "evaluation") -> None:
    """``ValueError`` naming ``label_col`` (the user's column; ``y_col`` holds its 0/1 reading) and the first patient
    whose rows carry both classes: the per-patient ``purpose`` needs one label per patient (remedy: ``--patient ''``)."""
    differ = df.groupby(patient_col)[y_col].nunique()
    if (differ > 1).any():
        first = differ.index[differ > 1][0]
        raise ValueError(f"column {label_col!r} differs within {patient_col!r} for {int((differ > 1).sum())} "
                         f"patient(s), first '{first}': a patient's images must share one label for the "
                         f"per-patient {purpose} (without one: --patient '')")


def aggregate_binary(
    df: pd.DataFrame,
    group_col: str,
    score_col: str = "score",
    *,
    label_col: str | None = "label",
    rule: BinaryRule = "mean",
    threshold: float | None = None,
) -> pd.DataFrame:
    """One row per group with its aggregated score (and its label, which must be constant).

    Rules: ``mean`` probability, ``max`` probability, or ``any`` (1.0 if any image has
    ``score >= threshold`` else 0.0). Output columns: group_col, score, n_images[, label].
    """
    _check_columns(df, [group_col, score_col] + ([label_col] if label_col else []))
    scores = pd.to_numeric(df[score_col], errors="coerce")
    if scores.isna().any():
        raise ValueError(f"column {score_col!r} has {int(scores.isna().sum())} missing or non-numeric value(s)")
    work = df.assign(_score=scores.astype(float))
    grouped = work.groupby(group_col, sort=True)["_score"]
    if rule == "mean":
        agg = grouped.mean()
    elif rule == "max":
        agg = grouped.max()
    elif rule == "any":
        if threshold is None:
            raise ValueError("rule='any' needs a threshold")
        agg = grouped.max().ge(threshold).astype(float)
    else:
        raise ValueError(f"unknown rule {rule!r}; use 'mean', 'max' or 'any'")
    out = pd.DataFrame({group_col: agg.index, "score": agg.to_numpy(), "n_images": grouped.size().to_numpy()})
    labels = _group_labels(df, group_col, label_col)
    if labels is not None:
        out[label_col] = labels.to_numpy()
    return out.reset_index(drop=True)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``."""
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def aggregate_multiclass(
    df: pd.DataFrame,
    group_col: str,
    prob_cols: Sequence[str],
    *,
    label_col: str | None = "label",
    method: Literal["mean", "softmax_mean"] = "softmax_mean",
) -> pd.DataFrame:
    """One row per group with class scores aggregated over its images.

    ``mean``: mean of each class column. ``softmax_mean``: softmax over classes of those means
    (use with logits; with probabilities it keeps the ranking but flattens the values).
    Adds ``predicted`` (the column name of the top class) and ``n_images``.
    """
    _check_columns(df, [group_col, *prob_cols] + ([label_col] if label_col else []))
    probs = df[list(prob_cols)].apply(pd.to_numeric, errors="coerce")
    if probs.isna().any().any():
        raise ValueError(f"columns {list(prob_cols)} contain missing or non-numeric values")
    grouped = probs.assign(**{group_col: df[group_col].to_numpy()}).groupby(group_col, sort=True)
    means = grouped.mean()
    values = means.to_numpy()
    if method == "softmax_mean":
        values = softmax(values, axis=1)
    elif method != "mean":
        raise ValueError(f"unknown method {method!r}; use 'mean' or 'softmax_mean'")
    out = pd.DataFrame(values, columns=list(prob_cols))
    out.insert(0, group_col, means.index.to_numpy())
    out["predicted"] = np.asarray(prob_cols)[values.argmax(axis=1)]
    out["n_images"] = grouped.size().to_numpy()
    labels = _group_labels(df, group_col, label_col)
    if labels is not None:
        out[label_col] = labels.to_numpy()
    return out
