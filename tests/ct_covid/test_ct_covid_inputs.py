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


def _chest_abdomen(ctmd_folder: Path):
    """SYNTHETIC chest–abdomen scan: the real P002 chest series (133 slices) with 200 lung-free slices below it
    (copies of its own lung-free lowest slice at 2 mm steps): lungs on ~27 % of the slices, whole lungs inside."""
    from dataclasses import replace

    import numpy as np

    chest = read_study(ctmd_folder / "series" / "P002")
    below = np.repeat(chest.pixels[-1:], 200, axis=0)
    last = chest.positions[-1]
    return replace(chest, pixels=np.concatenate([chest.pixels, below]),
                   positions=tuple(chest.positions) + tuple(last - 2.0 * (i + 1) for i in range(200)),
                   sources=chest.sources[:1])


def test_the_chest_part_of_a_longer_scan_is_analysed_not_refused(tmp_path, ctmd_folder, tiny_run, monkeypatch):
    from lesiondx.ct_covid import task
    from lesiondx.gate import check

    scan = _chest_abdomen(ctmd_folder)
    verdict = check("ct-covid", scan)  # was: refused, "lungs on only 27% of the slices: not a chest CT"
    body = verdict.checks["body_region"]
    assert verdict.status == "flagged" and body["status"] == "flagged" and "chest–abdomen–pelvis" in body["note"]
    first, last = body["value"]["chest_slices"]
    assert first < 20 and 100 < last < 160  # P002's lungs lie in its slices ~10–120
    monkeypatch.setattr(task, "_read_series", lambda inputs: (scan, "synthetic chest-abdomen"))
    result = task.predict([tmp_path], str(tiny_run), None)
    assert result["analysed_slices"] == [first, last] and result["series_slices"] == 333
    assert [s["slice"] for s in result["slices"]] == list(range(first, last + 1))
    assert "label" not in result["patient"] or "incomplete" not in result["patient"]["label"]


def test_an_abdominal_scan_with_the_lung_bases_is_still_refused(ctmd_folder):
    """Lungs at the first slice (the bases of an abdominal scan): no whole chest inside, refused as before."""
    from dataclasses import replace

    from lesiondx.gate import check

    scan = _chest_abdomen(ctmd_folder)
    bases = replace(scan, pixels=scan.pixels[90:], positions=scan.positions[90:])
    assert check("ct-covid", bases).status == "refused"
