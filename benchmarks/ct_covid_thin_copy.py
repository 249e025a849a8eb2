"""Build the SYNTHETIC thin-slice series of the ct-covid memory/time benchmark (BENCHMARKS.md ct-covid "Thin-slice
series"): every slice of a CT-MD series written 4 times at 0.5 mm steps, SliceThickness 0.6 (compressed pixel bytes
kept). Real pixel data: write it outside the repository and delete it afterwards.

    python benchmarks/ct_covid_thin_copy.py ../shared/data/covid_ct_md_sample/series/P002 /tmp/thin
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pydicom


def build(series: Path, out: Path, copies: int = 4, step_mm: float = 0.5) -> int:
    """Write the thin copy of ``series`` to ``out``; the number of files written."""
    if Path(__file__).resolve().parents[1] in out.resolve().parents:
        raise ValueError(f"{out}: real pixel data must not be written inside the repository")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for path in sorted(series.iterdir()):
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        for k in range(copies):
            ds.ImagePositionPatient = [x, y, z - step_mm * k]
            ds.SliceThickness = 0.6
            ds.save_as(out / f"{path.stem}_{k}.dcm")
    return sum(1 for _ in out.iterdir())


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), Path(sys.argv[2])))
