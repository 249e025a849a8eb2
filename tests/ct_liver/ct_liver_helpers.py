"""Plain helpers for the ct-liver tests (IRCADb rows read in place, windowed slice folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lesiondx.io import apply_window, read_image


def ircadb_rows(folder: Path, *, inside: bool, n: int = 6, pick: str = "largest") -> pd.DataFrame:
    """Up to ``n`` consecutive slices around the middle of one lesion with ``inside_liver`` == ``inside``
    in lesions.csv: the ``largest`` or the ``median``-sized one; skips when there is none."""
    lesions = pd.read_csv(folder / "lesions.csv")
    match = lesions[lesions["inside_liver"] == int(inside)].sort_values("voxels", ascending=False)
    if match.empty:
        pytest.skip(f"{folder}: no lesion with inside_liver={int(inside)}")
    row = match.iloc[0 if pick == "largest" else len(match) // 2]
    labels = pd.read_csv(folder / "labels.csv")
    rows = labels[labels["patient_id"] == row["patient_id"]].sort_values("slice_index")
    mid = (row["first_slice_index"] + row["last_slice_index"]) // 2
    rows = rows[(rows["slice_index"] >= mid - n // 2) & (rows["slice_index"] < mid - n // 2 + n)]
    return rows.assign(lesion_value=int(row["lesion_value"]))


def windowed_slices(folder: Path, rows: pd.DataFrame, out: Path) -> Path:
    """Export abdomen-windowed PNGs of the rows to a temporary folder (never into the repo)."""
    out.mkdir(parents=True, exist_ok=True)
    for k, rec in enumerate(rows.itertuples()):
        hu = read_image(folder / rec.image).pixels
        Image.fromarray(apply_window(hu, "abdomen").astype(np.uint8)).save(out / f"slice_{k}.png")
    return out
