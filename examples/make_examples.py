"""Rebuild the bundled examples from ../shared/data (CC BY 4.0 sources only; see each SOURCE.md).

Run from the repository root: ``.venv/bin/python examples/make_examples.py``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HERE = Path(__file__).resolve().parent
AUL_IDS = ["benign_001", "benign_010", "benign_020", "malignant_010", "malignant_020",
           "malignant_030", "normal_002"]
CTMD_PATIENT, CTMD_FIRST, CTMD_COUNT = "P002", 20, 10


def copy_rows(src: Path, dst: Path, rows: pd.DataFrame, path_columns: list[str]) -> None:
    for column in path_columns:
        for rel in rows[column].dropna():
            if rel:
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / rel, dst / rel)
    rows.to_csv(dst / "labels.csv", index=False)


def main() -> int:
    if not SHARED.is_dir():
        print(f"shared data not found at {SHARED}", file=sys.stderr)
        return 1
    src = SHARED / "aul_liver_us"
    aul = pd.read_csv(src / "labels.csv", dtype=str, keep_default_na=False)
    dst = HERE / "aul_liver_us_mini"
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir()
    copy_rows(src, dst, aul[aul.image_id.isin(AUL_IDS)], ["image", "lesion_mask", "liver_mask", "sector_mask"])

    src = SHARED / "covid_ct_md_sample"
    ctmd = pd.read_csv(src / "labels.csv", dtype=str, keep_default_na=False)
    rows = ctmd[ctmd.patient_id == CTMD_PATIENT].copy()
    rows["slice_index"] = rows["slice_index"].astype(int)
    rows = rows[(rows.slice_index >= CTMD_FIRST) & (rows.slice_index < CTMD_FIRST + CTMD_COUNT)].copy()
    rows["slice_index"] = rows["slice_index"] - CTMD_FIRST
    dst = HERE / "covid_ct_md_mini"
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir()
    copy_rows(src, dst, rows, ["image"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
