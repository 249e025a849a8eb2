"""ct-covid predict on what a PACS export holds: two reconstructions of one acquisition in one folder (real CT-MD
P002 slices, altered copies: synthetic series UIDs and positions)."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from lesiondx.ct_covid.task import _read_series
from lesiondx.io import read_study


def _two_reconstructions(ctmd_folder: Path, folder: Path) -> None:
    """6 slices 0.6 mm apart ('Thorax 0.6 B70f') and 3 slices 2 mm apart ('Thorax 2.0 D40s') of one study."""
    files = sorted((ctmd_folder / "series" / "P002").glob("*.dcm"))
    thin, thick = generate_uid(), generate_uid()
    folder.mkdir()
    for i, source in enumerate(files[:6]):
        ds = pydicom.dcmread(source)
        ds.SeriesInstanceUID, ds.SeriesDescription, ds.SeriesNumber, ds.SliceThickness = thin, "Thorax 0.6 B70f", 2, 0.6
        ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], -100.0 - 0.6 * i]
        ds.save_as(folder / f"THIN{i:03d}.dcm")
    for i, source in enumerate(files[:3]):
        ds = pydicom.dcmread(source)
        ds.SeriesInstanceUID, ds.SeriesDescription, ds.SeriesNumber = thick, "Thorax 2.0 D40s", 3
        ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], -100.0 - 2.0 * i]
        ds.save_as(folder / f"THICK{i:03d}.dcm")


def test_predict_reads_the_reconstruction_in_the_validated_step_range(tmp_path, ctmd_folder):
    folder = tmp_path / "export"
    _two_reconstructions(ctmd_folder, folder)
    assert read_study(folder).n_slices == 6  # any task: the largest axial series
    image, _ = _read_series([folder])  # was: the 0.6 mm series, then flagged as thinner than validated
    assert image.n_slices == 3 and all(p.name.startswith("THICK") for p in image.sources)
    text = " | ".join(image.warnings)
    assert "read series 3 'Thorax 2.0 D40s'" in text and "1.8–5 mm apart" in text, text
    assert "skipped series 2 'Thorax 0.6 B70f' (6 images, 0.6 mm, kernel D40s): slices outside that range" in text, text
