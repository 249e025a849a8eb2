"""Patient-grouped splits: stratified train/val/test, k-fold, and external splits by a column."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd


def _group_strata(frame: pd.DataFrame, stratify: str | None, group: str) -> tuple[np.ndarray, np.ndarray]:
    groups = frame[group].astype(str).to_numpy()
    if stratify is None:
        return groups, np.zeros(len(frame), dtype=int)
    labels = frame[stratify].astype(str).to_numpy()
    return groups, pd.factorize(labels)[0]


def grouped_kfold(
    frame: pd.DataFrame, k: int = 5, *, stratify: str | None = "label", group: str = "patient_id", seed: int = 0
) -> np.ndarray:
    """Fold number (0..k-1) per row; one patient's rows always share a fold; classes balanced."""
    groups, strata = _group_strata(frame, stratify, group)
    n_groups = len(set(groups))
    if n_groups < k:
        raise ValueError(f"cannot make {k} folds from {n_groups} patients")
    folds = np.full(len(frame), -1, dtype=int)
    from sklearn.model_selection import StratifiedGroupKFold  # ~0.2 s: not on a predict process's path

    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a label with fewer patients than folds is the caller's to judge and say
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        split = list(splitter.split(np.zeros(len(frame)), strata, groups))
    for fold, (_, test_idx) in enumerate(split):
        folds[test_idx] = fold
    return folds


def require_patients_per_label(frame: pd.DataFrame, k: int, *, where: str, min_folds: int = 2,
                               group: str = "patient_id") -> None:
    """``ValueError`` (naming ``where``, e.g. labels.csv) when a label has fewer than ``k`` patients: grouped
    ``k``-fold cross-validation needs one of each label's patients in every fold (each fold is tested, and the
    next one validates); the fix offers fewer folds only when ``k`` is above ``min_folds``."""
    per_label = frame.groupby("label")[group].nunique()
    short = per_label[per_label < k]
    if len(short):
        counts = ", ".join(f"{label!r} has {n}" for label, n in short.items())
        fewer = f", or lower folds in the config (now {k}, at least {min_folds})" if k > min_folds else ""
        raise ValueError(f"{where}: too few patients for {k} folds: {counts} (each label needs at least {k} "
                         f"patients, one in every fold); add patients of that label{fewer}")


def grouped_split(
    frame: pd.DataFrame,
    *,
    val: float = 0.15,
    test: float = 0.15,
    stratify: str | None = "label",
    group: str = "patient_id",
    seed: int = 0,
) -> pd.Series:
    """``train``/``val``/``test`` per row, grouped by patient and stratified by label.

    Fractions are approximate (whole patients move together). ``test=0`` gives train/val only.
    """
    if not 0 <= val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise ValueError(f"val={val} and test={test} must be fractions summing to < 1")
    split = pd.Series("train", index=frame.index, dtype=object)
    remaining = frame
    if test > 0:
        folds = grouped_kfold(frame, max(2, round(1 / test)), stratify=stratify, group=group, seed=seed)
        split[folds == 0] = "test"
        remaining = frame[folds != 0]
    if val > 0:
        share = val / (1 - test)
        folds = grouped_kfold(remaining, max(2, round(1 / share)), stratify=stratify, group=group, seed=seed + 1)
        split[remaining.index[folds == 0]] = "val"
    return split


def external_split(
    frame: pd.DataFrame,
    column: str,
    *,
    test_values: Iterable[object] | None = None,
    on_or_after: str | None = None,
) -> pd.Series:
    """``train``/``test`` by any column: rows whose value is in ``test_values`` (e.g. a centre), or
    whose date is on or after ``on_or_after`` (ISO date), form the external test set."""
    if column not in frame.columns:
        raise ValueError(f"no column {column!r} to split on (have: {', '.join(frame.columns)})")
    if (test_values is None) == (on_or_after is None):
        raise ValueError("give exactly one of test_values or on_or_after")
    if test_values is not None:
        wanted = {str(v) for v in test_values}
        is_test = frame[column].astype(str).isin(wanted)
    else:
        dates = pd.to_datetime(frame[column], errors="coerce")
        if dates.isna().any():
            row = int(np.flatnonzero(dates.isna())[0])
            raise ValueError(f"column {column!r} row {row}: not a date: {frame[column].iloc[row]!r}")
        is_test = dates >= pd.Timestamp(on_or_after)
    return pd.Series(np.where(is_test, "test", "train"), index=frame.index, dtype=object)


def patients_on_several_sides(frame: pd.DataFrame, split: pd.Series, group: str = "patient_id") -> list[str]:
    """Patients whose rows fall in more than one split part (should be empty)."""
    sides = pd.DataFrame({"g": frame[group].astype(str), "s": split}).groupby("g")["s"].nunique()
    return sorted(sides.index[sides > 1])
