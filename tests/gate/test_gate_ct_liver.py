"""ct-liver gate on ALTERED copies (in pytest's tmp folder, deleted after the run) of real IRCADb slices, read in
place from the shared data (CC BY-NC-ND: nothing copied into the repository)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from lesiondx.gate import check
from lesiondx.io import MedicalImage, read_dicom_series, read_study
from lesiondx_testdata import SHARED_DATA


def _ircadb_p01() -> Path:
    folder = SHARED_DATA / "liver_ircadb01_p01_p07" / "ct" / "p01"
    if not folder.is_dir():
        pytest.skip(f"IRCADb p01 not found at {folder}")
    return folder


def _liver_level_files(n: int = 6) -> list[Path]:
    """``n`` consecutive slices through the middle of the liver (p01 image_70…)."""
    return [_ircadb_p01() / f"image_{k}" for k in range(70, 70 + n)]


def test_a_ct_stored_without_rescale_tags_is_refused_not_read_as_windowed_slices(tmp_path: Path):
    """ALTERED: stored values HU + 1024 (0..4095, the usual CT storage) with RescaleSlope/RescaleIntercept removed."""
    for source in _liver_level_files():
        ds = pydicom.dcmread(source)
        stored = np.clip(ds.pixel_array.astype(np.int32) + 1024, 0, 4095).astype(np.uint16)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelRepresentation, ds.PixelData = 0, stored.tobytes()
        del ds.RescaleSlope, ds.RescaleIntercept
        ds.save_as(tmp_path / source.name, enforce_file_format=True)
    image = read_study(tmp_path)
    assert not image.is_hu and image.pixels.max() > 255
    verdict = check("ct-liver", image)  # was: "ok"; read as 8-bit slices in a guessed window, findings with wrong HU
    assert verdict.status == "refused"
    note = verdict.checks["pixel_values"]["note"]
    assert "RescaleSlope/RescaleIntercept" in note and "abdomen window" in note
    assert check("ct-liver", read_dicom_series(_liver_level_files())).checks["pixel_values"]["status"] == "ok"


def _liver_level() -> MedicalImage:
    return read_dicom_series(_liver_level_files())


def test_a_coronal_reformat_is_refused():
    """ALTERED orientation (coronal: rows along x, columns along −z): was only flagged, then read as axial slices (liver
    filter and detector assume axial anatomy; sizes used the column spacing for both axes)."""
    verdict = check("ct-liver", replace(_liver_level(), orientation=(1.0, 0.0, 0.0, 0.0, 0.0, -1.0)))
    assert verdict.status == "refused"
    assert "coronal" in verdict.checks["slice_geometry"]["note"] and "axial" in verdict.checks["slice_geometry"]["note"]


def test_a_gantry_tilted_series_is_flagged_with_its_angle():
    tilt = np.radians(20)
    image = replace(_liver_level(), orientation=(1.0, 0.0, 0.0, 0.0, float(np.cos(tilt)), float(np.sin(tilt))))
    verdict = check("ct-liver", image)  # was "ok": read as a straight stack with nothing said
    assert verdict.status == "flagged" and "tilted 20°" in verdict.checks["slice_geometry"]["note"]


def test_thick_slices_are_flagged_with_the_smallest_lesion_they_can_show():
    image = _liver_level()
    thick = replace(image, positions=tuple(4.8 * k for k in range(image.n_slices)))
    verdict = check("ct-liver", thick)  # was "ok" (validated_on_input true) on 4.8 mm slices
    note = verdict.checks["slice_geometry"]["note"]
    assert verdict.status == "flagged" and "4.8 mm apart" in note and "9.6 mm" in note
    assert check("ct-liver", image).checks["slice_geometry"]["status"] == "ok"  # IRCADb's own 1.6 mm


def test_two_stacks_mixed_in_one_series_are_refused():
    """ALTERED positions: each position twice (two phases exported with one SeriesInstanceUID, interleaved). Was only
    flagged ("slice step 0.0 mm"), then read as one stack: 0 lesions reported."""
    image = _liver_level()
    mixed = replace(image, positions=tuple(1.6 * (k // 2) for k in range(image.n_slices)))
    verdict = check("ct-liver", mixed)
    assert verdict.status == "refused"
    assert "3 slice positions occur twice" in verdict.checks["slice_geometry"]["note"]


def test_a_liver_darker_than_40_hu_is_named_as_a_possible_reason_for_no_liver_level():
    """ALTERED in memory: p01 liver-level slices with 30–400 HU compressed to 30–67 HU (liver ≈ 38 HU, as a fatty liver
    without contrast). The refusal said only "the series does not reach the liver", which misleads on such a scan."""
    image = _liver_level()
    hu = image.pixels.copy()
    soft = (hu > 30) & (hu < 400)
    hu[soft] = 30 + (hu[soft] - 30) * 0.1
    verdict = check("ct-liver", image.with_pixels(hu))
    assert verdict.status == "refused"
    assert "below 40 HU" in verdict.checks["body_region"]["note"]
