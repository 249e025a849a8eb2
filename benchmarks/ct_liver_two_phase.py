"""Build a 60-slice two-phase ct-liver study for the timing benchmark (BENCHMARKS.md ct-liver §3b).

Phase 1 ("portal-venous"): 60 consecutive real DICOM slices of IRCADb p01, copied unchanged (lossless
re-encoding to explicit little endian). Phase 2 ("arterial"): **SYNTHETIC, derived from phase 1** — the same
slices moved by (3, -4) pixels, vessels (> 150 HU) made brighter by 120 HU and parenchyma (80-150 HU) darker
by 25 HU, written as a second series with its own UIDs and SeriesDescription "ARTERIAL (SYNTHETIC ...)".
IRCADb is CC BY-NC-ND: write the study **outside the repo** (e.g. /tmp) and delete it afterwards.

    python benchmarks/ct_liver_two_phase.py /work/shared/data/liver_ircadb01_p01_p07 /tmp/ctl_2phase
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

FIRST, N = 30, 60  # IRCADb p01 image_30 … image_89 (the liver and 7 of its 8 lesions' slices)


def _write(ds: pydicom.Dataset, pixels: np.ndarray, path: Path, series_uid: str, description: str) -> None:
    ds = ds.copy()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = pixels.astype(np.int16).tobytes()
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesDescription = description
    ds.save_as(path, enforce_file_format=True)


def build(ircadb: Path, out: Path) -> Path:
    """Write ``out/portal`` (real) and ``out/arterial`` (SYNTHETIC, derived) with ``N`` slices each."""
    if Path(__file__).resolve().parents[1] in out.resolve().parents:
        raise ValueError(f"{out}: IRCADb-derived files must not be written inside the repository")
    portal_uid, arterial_uid = generate_uid(), generate_uid()
    for sub in ("portal", "arterial"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for k in range(FIRST, FIRST + N):
        ds = pydicom.dcmread(ircadb / "ct" / "p01" / f"image_{k}")
        hu = ds.pixel_array.astype(np.int32)  # slope 1, intercept 0 (SOURCE.md)
        _write(ds, hu, out / "portal" / f"slice_{k:03d}.dcm", portal_uid, "PORTAL VENOUS (IRCADb p01)")
        art = np.where(hu > 150, hu + 120, np.where(hu > 80, hu - 25, hu))
        art = np.roll(art, (3, -4), axis=(0, 1))
        _write(ds, np.clip(art, -1024, 3071), out / "arterial" / f"slice_{k:03d}.dcm", arterial_uid,
               "ARTERIAL (SYNTHETIC, derived from IRCADb p01)")
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), Path(sys.argv[2])))
