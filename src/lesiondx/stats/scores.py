"""Score columns of prediction tables written by other tools: numbers, empty cells, percentages.

Empty cells (and pandas' missing markers: ``NA``, ``n/a``, ``NaN``...) are *missing* scores: the analyses
leave those rows out and count them, as R pROC does by default (``na.rm = TRUE``), and every report says
how many. Text such as ``high`` is an error naming the column and the file line. A column whose values
all end in ``%`` (``83.5%``) is read as probabilities (÷ 100) and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ScoreColumn:
    """One score column as floats (``NaN`` = missing), the missing count and how it was read."""

    name: str
    values: np.ndarray
    n_missing: int
    note: str | None = None  # e.g. "read as percentages"

    @property
    def present(self) -> np.ndarray:
        """True where the row has a score."""
        return ~np.isnan(self.values)


def row_places(column: pd.Series) -> list[str]:
    """Where each row of ``column`` sits in its file: ``"line N"`` from the ``lines`` that
    :func:`lesiondx.data.tables.read_table` records (blank lines counted), else data row ``i`` on line ``i + 2``."""
    lines = column.attrs.get("lines")
    if lines is None or len(lines) != len(column):
        lines = range(2, len(column) + 2)
    return [f"line {n}" for n in lines]


def read_scores(column: pd.Series, name: str, places: Sequence[str] | None = None) -> ScoreColumn:
    """``column`` as a :class:`ScoreColumn`; ``ValueError`` naming ``name`` and the first line with text
    that is not a number (or with an infinite value). ``places``: where each row comes from (e.g.
    ``"b.csv line 7"`` for a table joined from several files); default :func:`row_places`."""
    where = list(places) if places is not None else row_places(column)
    raw = column.reset_index(drop=True)
    text = raw.astype("string").str.strip()
    empty = raw.isna().to_numpy() | (text == "").fillna(True).to_numpy()
    percent = text.str.endswith("%").fillna(False).to_numpy()
    note = None
    if percent.any():
        if not (percent | empty).all():
            first = int(np.flatnonzero(~(percent | empty))[0])
            raise ValueError(f"column {name!r} mixes percentages and plain numbers ({where[first]}: "
                             f"{raw.iloc[first]!r}); use one of them")
        raw = text.str.rstrip("%")
        note = f"scores in column {name!r} given as percentages: read as probabilities (value / 100)"
    values = pd.to_numeric(raw.where(~empty), errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(values) & ~empty
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"column {name!r} has {int(bad.sum())} value(s) that are not numbers, first on "
                         f"{where[first]}: {column.iloc[first]!r}")
    if np.isinf(values).any():
        first = int(np.flatnonzero(np.isinf(values))[0])
        raise ValueError(f"column {name!r} has an infinite score on {where[first]}")
    if note:
        values = values / 100.0
    return ScoreColumn(name=name, values=values, n_missing=int(empty.sum()), note=note)


def missing_note(col: ScoreColumn, ids: pd.Series | None = None, places: Sequence[str] | None = None) -> str | None:
    """``"3 rows without a score in column 'score' left out (first: image_id i3)"`` (or the first one's
    ``places`` entry, e.g. ``line 9``, without ``ids``), or None."""
    if not col.n_missing:
        return None
    first = int(np.flatnonzero(~col.present)[0])
    where = f"image_id {ids.iloc[first]}" if ids is not None else (places[first] if places is not None
                                                                    else f"row {first + 1}")
    return f"{col.n_missing} row(s) without a score in column {col.name!r} left out (first: {where})"


__all__ = ["ScoreColumn", "missing_note", "read_scores", "row_places"]
