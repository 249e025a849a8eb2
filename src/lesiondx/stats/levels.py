"""Which labels are positive, which negative, and which are left out (R pROC's ``levels``).

A report never makes an unnamed class negative behind the user's back: every label that is
neither positive nor negative is excluded, and the excluded rows are counted per label.
When ``negative`` is not given it defaults to "the one other label" and fails when there are
several, asking for ``--negative``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MISSING = "(missing)"


def label_key(value: Any) -> str:
    """Canonical text of a label: ``1``, ``1.0``, ``"1"``, ``True`` and ``"true"`` are all ``"1"``; NaN is
    ``(missing)``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    text = str(value).strip()
    if text.lower() in ("true", "false"):  # pandas reads a True/False column as bool: --positive True must match
        return "1" if text.lower() == "true" else "0"
    try:
        f = float(text)
    except ValueError:
        return text
    return str(int(f)) if math.isfinite(f) and f.is_integer() else text


@dataclass(frozen=True)
class LevelSelection:
    """Rows kept for a binary analysis: ``keep`` over all rows, ``y`` (True = positive) over kept rows."""

    keep: np.ndarray
    y: np.ndarray
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    excluded: dict[str, int]  # label -> number of rows left out

    @property
    def excluded_text(self) -> str:
        """``"normal (1), cyst (2)"`` or ``"none"``."""
        return ", ".join(f"{k} ({v})" for k, v in self.excluded.items()) or "none"

    def to_dict(self) -> dict[str, Any]:
        return {"positive": list(self.positive), "negative": list(self.negative), "excluded": dict(self.excluded),
                "n_excluded": int(sum(self.excluded.values()))}


def _keys(values: Sequence[Any] | Any | None) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, (str, int, float, np.integer, np.floating, bool)):
        values = [values]
    return tuple(dict.fromkeys(label_key(v) for v in values))


def _counts(keys: pd.Series) -> str:
    return ", ".join(f"{k} ({n})" for k, n in keys.value_counts(sort=False).sort_index().items())


def select_levels(labels: Sequence[Any] | pd.Series, positive: Any, negative: Any = None) -> LevelSelection:
    """Positive rows vs negative rows of ``labels``; every other label excluded and counted.

    ``positive`` / ``negative``: one label or several. Without ``negative`` the single other label
    is negative; several other labels raise ``ValueError`` naming them (give ``negative``).
    """
    keys = pd.Series([label_key(v) for v in np.asarray(labels, dtype=object)], dtype=object)
    pos, neg = _keys(positive), _keys(negative)
    if not pos:
        raise ValueError("no positive label given")
    present = set(keys)
    missing_pos = [p for p in pos if p not in present]
    if missing_pos and len(present - {MISSING}) == 1:
        raise ValueError(f"only one class: every labelled row is {_counts(keys[keys != MISSING])}, none is positive "
                         f"({', '.join(map(repr, missing_pos))}); an ROC needs positive and negative cases")
    if missing_pos:
        raise ValueError(f"positive label {', '.join(map(repr, missing_pos))} not found; label values are "
                         f"{_counts(keys) or 'none (no rows)'}"
                         + (" (name the positive one(s) with --positive, the negative with --negative)"
                            if len(present - {MISSING}) else ""))
    if set(pos) & set(neg):
        raise ValueError(f"label(s) {sorted(set(pos) & set(neg))} given as both positive and negative")
    if not neg:
        others = sorted(present - set(pos) - {MISSING})
        if not others:
            raise ValueError(f"only one class: every labelled row is positive ({_counts(keys)}); an ROC "
                             "needs positive and negative cases")
        if len(others) != 1:
            rest = _counts(keys[~keys.isin(pos)]) or "none"
            raise ValueError(f"say which labels are negative (--negative); labels other than the positive: {rest}")
        neg = (others[0],)
    missing_neg = [n for n in neg if n not in present]
    if len(missing_neg) == len(neg):
        raise ValueError(f"negative label {', '.join(map(repr, missing_neg))} not found; "
                         f"label values are {_counts(keys)}")
    is_pos, is_neg = keys.isin(pos).to_numpy(), keys.isin(neg).to_numpy()
    keep = is_pos | is_neg
    excluded = {str(k): int(n) for k, n in keys[~keep].value_counts().sort_index().items()}
    return LevelSelection(keep=keep, y=is_pos[keep], positive=pos, negative=neg, excluded=excluded)
