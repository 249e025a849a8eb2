"""A field of view that cuts the liver: said, and the series flagged. Real IRCADb p01 slices read in place (CC BY-NC-ND:
nothing copied); the cut is an ALTERED in-memory crop."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lesiondx.ct_liver.coverage import field_of_view_check, with_check
from lesiondx.ct_liver.liver import hu_liver_mask
from lesiondx.ct_liver.study import from_image
from lesiondx.gate.verdict import Check, combine
from lesiondx.io import read_dicom_series
from lesiondx_testdata import SHARED_DATA


@pytest.fixture(scope="module")
def p01_hilum():
    folder = SHARED_DATA / "liver_ircadb01_p01_p07" / "ct" / "p01"
    if not folder.is_dir():
        pytest.skip(f"IRCADb p01 not found at {folder}")
    return from_image(read_dicom_series([folder / f"image_{k}" for k in range(60, 90)]), "p01")


def test_a_crop_through_the_right_lobe_is_flagged_and_the_whole_liver_is_not(p01_hilum):
    whole = field_of_view_check(p01_hilum.hu, hu_liver_mask(p01_hilum.hu, p01_hilum.spacing_mm), p01_hilum.spacing_mm)
    assert whole.status == "ok", whole
    cut_hu = p01_hilum.hu[:, :, 230:]  # ALTERED: image columns 0–229 (the patient's right, most of the right lobe) cut
    cut = field_of_view_check(cut_hu, hu_liver_mask(cut_hu, p01_hilum.spacing_mm), p01_hilum.spacing_mm)
    assert cut.status == "flagged", cut  # was: no check, 3 findings instead of 11 and nothing said
    assert "image edge cuts liver-density tissue" in cut.reason and "not analysed" in cut.reason


def test_with_check_adds_a_flag_to_an_ok_verdict_and_keeps_a_refusal():
    """SYNTHETIC verdicts."""
    flag = Check("field_of_view", "flagged", {"slices_at_edge": 5}, "cut")
    ok = combine("ct-liver", [Check("hu", "ok", {})])
    flagged = with_check(ok, flag)
    assert flagged.status == "flagged" and flagged.reasons == ("cut",) and "field_of_view" in flagged.checks
    assert with_check(ok, replace(flag, status="ok", reason="")).status == "ok"


def test_edge_share_counts_only_slices_with_liver():
    """SYNTHETIC: 4 liver slices (100 HU) 5 mm from the left edge; on 2 of them liver-density tissue runs 20 mm along
    that edge, on the others fat (−100 HU) does."""
    mask = np.zeros((6, 100, 100), bool)
    mask[1:5, 30:60, 10:50] = True
    hu = np.full(mask.shape, -1000.0)
    hu[:, 20:80, 0:95] = -100.0
    hu[mask] = 100.0
    hu[1:3, 20:80, 0:10] = 100.0
    check = field_of_view_check(hu, mask, 0.5)
    assert check.value["slices_at_edge"] == 2 and check.value["slices_with_liver"] == 4
    assert check.status == "flagged"


def test_predict_flags_a_series_whose_field_of_view_cuts_the_liver(tmp_path):
    """ALTERED DICOM copies (tmp folder) of p01 slices 60–89 with image columns 0–229 cut off and ImagePositionPatient
    moved to match: before, gate "ok", validated_on_input true, 3 of p01's findings reported and nothing said."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    from lesiondx.ct_liver import task

    folder = SHARED_DATA / "liver_ircadb01_p01_p07" / "ct" / "p01"
    if not folder.is_dir():
        pytest.skip(f"IRCADb p01 not found at {folder}")
    for k in range(60, 90):
        ds = pydicom.dcmread(folder / f"image_{k}")
        cut = np.ascontiguousarray(ds.pixel_array[:, 230:])
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.Columns, ds.PixelData = cut.shape[1], cut.tobytes()
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x + 230 * float(ds.PixelSpacing[1]), y, z]
        ds.save_as(tmp_path / f"image_{k}.dcm", enforce_file_format=True)
    result = task.predict([tmp_path])
    assert result["validated_on_input"] is False and result["gate"]["checks"]["field_of_view"]["status"] == "flagged"
    assert any("field of view cuts the liver" in r for r in result["gate"]["reasons"])
    # 30 slices through the hilum: the liver runs on beyond both ends (the mask-based coverage check, wired in predict)
    assert result["gate"]["checks"]["liver_coverage"]["status"] == "flagged"
    assert result["studies"][0]["gate"]["checks"]["field_of_view"]["status"] == "flagged"


def test_position_gaps_are_the_steps_over_two_and_a_half_median_steps():
    """SYNTHETIC positions (mm): 1.6 mm steps with 15 slices missing after the 4th slice (index 3)."""
    from lesiondx.ct_liver.coverage import position_gaps

    positions = [1.6 * k for k in range(4)] + [1.6 * k for k in range(19, 25)]
    assert position_gaps(positions) == (3,)
    assert position_gaps([1.6 * k for k in range(10)]) == () and position_gaps(None) == ()
