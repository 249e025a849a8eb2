"""What evaluate's row screen (read every row with the task's reader + run its input gate) costs and excludes
on the shared folders. Usage: PYTHONPATH=src python benchmarks/evaluate_screen.py aul|ctmd|ircadb"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from lesiondx.ct_covid.task import _usable_series
from lesiondx.ct_liver.task import _screen
from lesiondx.data import load_manifest, screen_rows
from lesiondx.io import read_image
from lesiondx.us_liver.task import _usable_row

SHARED = Path(os.environ.get("LESIONDX_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FOLDERS = {"aul": "aul_liver_us", "ctmd": "covid_ct_md_sample", "ircadb": "liver_ircadb01_p01_p07"}

if __name__ == "__main__":
    which = sys.argv[1]
    manifest = load_manifest(SHARED / FOLDERS[which])
    start = time.perf_counter()
    if which == "aul":  # us-liver: each frame read and gated
        screened = screen_rows(manifest, _usable_row)
    elif which == "ctmd":  # ct-covid: each slice read, each patient's series gated
        screened = screen_rows(manifest, lambda row: read_image(row["image"]), group_by="patient_id",
                               check_group=_usable_series)
    else:  # ct-liver: each slice and its masks read, each study gated
        screened = _screen(manifest, False)
    seconds = time.perf_counter() - start
    print(f"{which}: {screened.headline}; {seconds:.1f} s, {1000 * seconds / screened.n_listed:.0f} ms per row; "
          f"first excluded: {[b.line() for b in screened.excluded[:3]]}")
