"""Input checks shared by the statistics functions.

Every public function funnels its arrays through these helpers so that bad input
(length mismatch, NaN, a single class, non-numeric scores) fails early with a
``ValueError`` whose message says what is wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

ArrayLike = Any  # anything np.asarray accepts


def as_scores(y_score: ArrayLike, name: str = "y_score") -> np.ndarray:
    """Return ``y_score`` as a 1-D float array; reject non-numeric values and NaN/inf."""
    arr = np.asarray(y_score)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(float)
    try:
        out = arr.astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if not np.all(np.isfinite(out)):
        bad = int(np.sum(~np.isfinite(out)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return out


def as_binary(y_true: ArrayLike, name: str = "y_true") -> np.ndarray:
    """Return ``y_true`` as a 1-D bool array; values must be 0/1 or bool."""
    arr = np.asarray(y_true)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    try:
        num = arr.astype(float)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must hold 0/1 labels; use binarize_labels() for labels such as "
            f"{sorted(map(str, set(arr.tolist())))[:4]}"
        ) from None
    if np.any(np.isnan(num)):
        raise ValueError(f"{name} contains NaN labels")
    if not np.all(np.isin(num, (0.0, 1.0))):
        raise ValueError(f"{name} must hold only 0 and 1, got values {sorted(set(num.tolist()))[:6]}")
    return num.astype(bool)


def check_binary(y_true: ArrayLike, y_score: ArrayLike, *, need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (labels, scores) pair: same length, finite numeric scores, both classes present."""
    y = as_binary(y_true)
    s = as_scores(y_score)
    if y.shape[0] != s.shape[0]:
        raise ValueError(f"length mismatch: y_true has {y.shape[0]} values, y_score has {s.shape[0]}")
    if need_both:
        n_pos = int(y.sum())
        if n_pos == 0 or n_pos == y.shape[0]:
            only = "positive" if n_pos else "negative"
            raise ValueError(f"y_true contains only one class ({only}, n={y.shape[0]}); need both classes")
    return y, s


def binarize_labels(labels: ArrayLike, positive: Any) -> np.ndarray:
    """Map a label column (strings or numbers) to bool, ``True`` where it equals ``positive``.

    ``positive`` may be given as a string (e.g. from the command line) for a numeric
    column: ``"1"`` matches ``1`` and ``1.0``. Missing labels raise ``ValueError``.
    """
    ser = pd.Series(np.asarray(labels, dtype=object))
    if ser.isna().any():
        raise ValueError(f"label column has {int(ser.isna().sum())} missing value(s)")
    numeric = pd.to_numeric(ser, errors="coerce")
    if not numeric.isna().any():
        try:
            pos_num = float(positive)
        except (TypeError, ValueError):
            pos_num = None
        if pos_num is not None:
            out = numeric.to_numpy(dtype=float) == pos_num
            return _require_found(out, ser, positive)
    out = (ser.astype(str).str.strip() == str(positive).strip()).to_numpy()
    return _require_found(out, ser, positive)


def _require_found(mask: np.ndarray, ser: pd.Series, positive: Any) -> np.ndarray:
    if not mask.any():
        seen = sorted(map(str, ser.unique()))[:8]
        raise ValueError(f"positive label {positive!r} not found; label values are {seen}")
    return mask
