"""Series that show little or none of the liver (a chest CT's liver dome, a scan below the liver): the phase is not
told from vessels measured off the liver hilum. Real IRCADb p01 slices read in place (CC BY-NC-ND: nothing copied)."""

from __future__ import annotations


import numpy as np
import pytest

from lesiondx.ct_liver.coverage import craniocaudal_check
from lesiondx.ct_liver.liver import hu_liver_mask
from lesiondx.ct_liver.phases import MIN_LIVER_SECTION_CM2, largest_section_cm2, series_phase
from lesiondx.ct_liver.study import from_image
from lesiondx.io import read_dicom_series
from lesiondx_testdata import SHARED_DATA


def _p01(indices: range):
    folder = SHARED_DATA / "liver_ircadb01_p01_p07" / "ct" / "p01"
    if not folder.is_dir():
        pytest.skip(f"IRCADb p01 not found at {folder}")
    study = from_image(read_dicom_series([folder / f"image_{k}" for k in indices]), "p01")
    return study, hu_liver_mask(study.hu, study.spacing_mm)


@pytest.mark.parametrize("indices, where", [(range(0, 27), "below the liver (no liver in the reference mask)"),
                                            (range(117, 129), "the top 12 slices: liver dome and lung bases")])
def test_a_series_with_little_liver_gets_no_phase_from_its_vessels(indices: range, where: str):
    study, liver = _p01(indices)
    call = series_phase(study, None, None, liver)  # was "arterial" (p01 is portal-venous): hyperdense search, APHE
    assert call.phase is None and call.source == "unknown", (where, call)
    assert largest_section_cm2(liver, study.spacing_mm) < MIN_LIVER_SECTION_CM2, where
    assert "cross-section" in call.reason and "--phase" in call.reason
    named = series_phase(study, "portal-venous", None, liver)  # a phase the user names is still used
    assert named.phase == "portal-venous" and named.warning is None


def test_a_series_through_the_liver_hilum_still_gets_its_phase_from_the_vessels():
    study, liver = _p01(range(50, 100))
    assert largest_section_cm2(liver, study.spacing_mm) >= MIN_LIVER_SECTION_CM2
    assert series_phase(study, None, None, liver).phase == "portal-venous"


def test_largest_section_is_in_square_centimetres():
    """SYNTHETIC mask: 100 × 100 pixels of 0.5 mm = 25 cm²."""
    mask = np.zeros((3, 200, 200), bool)
    mask[1, :100, :100] = True
    assert largest_section_cm2(mask, 0.5) == pytest.approx(25.0)


@pytest.mark.parametrize("indices, where, why", [
    (range(0, 27), "below the liver (no liver in the reference mask)", "cross-section"),
    (range(117, 129), "the top 12 slices: liver dome and lung bases (78 cm²)", "cross-section"),
    (range(60, 90), "30 slices through the hilum", "runs on beyond the first and last slice")])
def test_a_series_without_the_whole_liver_is_flagged(indices: range, where: str, why: str):
    study, liver = _p01(indices)
    check = craniocaudal_check(liver, study.spacing_mm)  # below / dome were flagged only by a slice-share rule before
    assert check.status == "flagged" and why in check.reason, (where, check)


def test_the_whole_liver_passes_even_in_a_longer_series():
    """Real p01 (129 slices, liver on slices 5–99) passes; SYNTHETIC: the same mask with 150 liver-free slices added
    below it (an abdomen–pelvis CT) passes too — the slice-share flag it replaces flagged such a series."""
    study, liver = _p01(range(0, 129))
    assert craniocaudal_check(liver, study.spacing_mm).status == "ok"
    longer = np.concatenate([np.zeros((150, *liver.shape[1:]), bool), liver])
    assert craniocaudal_check(longer, study.spacing_mm).status == "ok"


def test_a_liver_cut_at_one_end_is_flagged_and_named():
    """SYNTHETIC mask at 1 mm: 150 cm² cross-sections on slices 3–9 of 10 (the last slice holds the liver's largest)."""
    mask = np.zeros((10, 200, 200), bool)
    mask[3:, 50:150, 25:175] = True
    check = craniocaudal_check(mask, 1.0)
    assert check.status == "flagged" and check.value["cut_at"] == ["last"]
    assert check.value["largest_section_cm2"] == pytest.approx(150.0)
    assert craniocaudal_check(mask, None).value["largest_section_cm2"] == pytest.approx(150.0 * 0.75 ** 2, abs=0.05)
