"""Frames as a clinic hands them over, through ``predict`` with the shipped model: a real AUL frame rotated by 90°
(synthetic copy) is flagged, not silently answered; a "no focal lesion found" answer carries its out-of-distribution
distance; the heat map says when its peak lies outside the analysed ROI (real AUL frames, all seen in training);
a real CT slice (Lung-PET-CT-Dx, never seen by us-liver) in a DICOM file tagged US is refused with or without an ROI
(synthetic file: the CT pixels wrapped in an ultrasound DICOM)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lesiondx.data import Box
from lesiondx.gate import InputRefused
from lesiondx.us_liver import task
from lesiondx.us_liver.inference import DEFAULT_MODEL
from lesiondx_testdata import EXAMPLES, REPO, shared_dataset

MINI = EXAMPLES / "aul_liver_us_mini" / "images"


@pytest.fixture(scope="module", autouse=True)
def shipped() -> None:
    if not (DEFAULT_MODEL / "us_liver.pt").is_file():
        pytest.skip("shipped us-liver model missing")


def test_synthetic_rotated_frame_is_flagged_with_the_reason(tmp_path: Path):
    path = tmp_path / "malignant_010_rotated_90_synthetic.png"
    with Image.open(MINI / "malignant_010.jpg") as img:
        Image.fromarray(np.ascontiguousarray(np.rot90(np.asarray(img.convert("RGB"))))).save(path)
    r = task.predict([path], "default", None, cam=False)["results"][0]
    assert r["out_of_scope_flag"] and not r["validated_on_input"]
    assert any("rotated by 90°" in reason for reason in r["gate"]["reasons"]), r["gate"]


def test_no_focal_lesion_answer_carries_its_ood_distance(tmp_path: Path):
    """normal_007: a real AUL normal frame (fold 0: the segmenter never saw it; the OOD statistics were fitted on
    lesion frames of folds 1-4)."""
    normal = shared_dataset("aul_liver_us") / "images" / "normal_007.jpg"
    r = task.predict([normal], "default", tmp_path, cam=False)["results"][0]
    assert r["label"] == "no focal lesion found"
    ood = r["ood"]
    assert ood["score"] > 0 and ood["threshold"] > 0 and ood["out_of_distribution"] == (ood["score"] > ood["threshold"])
    assert "candidate region" in ood["basis"]


def test_heatmap_peak_outside_the_roi_is_said_not_silently_drawn(tmp_path: Path):
    """benign_003 (a real AUL frame, seen in training): the CAM of the proposed ROI peaks outside that ROI."""
    frame = shared_dataset("aul_liver_us") / "images" / "benign_003.jpg"
    r = task.predict([frame], "default", tmp_path)["results"][0]
    peak = r["heatmap_peak"]
    x1, y1, x2, y2 = r["box"]
    assert peak["inside_roi"] == (x1 <= peak["x"] < x2 and y1 <= peak["y"] < y2)
    assert not peak["inside_roi"] and "outside the analysed ROI" in peak["note"]
    inside = task.predict([MINI / "malignant_010.jpg"], "default", None, cam=False)["results"][0]
    assert inside["heatmap_peak"] is None  # no heat map drawn: nothing to say


def test_heatmap_peak_of_a_synthetic_map():
    from lesiondx.us_liver.outputs import heatmap_peak

    heat = np.zeros((50, 60), np.float32)
    heat[10, 40] = 1.0
    assert heatmap_peak(heat, Box(35, 5, 45, 15)) == {"x": 40, "y": 10, "inside_roi": True}
    assert not heatmap_peak(heat, Box(0, 0, 20, 20))["inside_roi"]
    assert heatmap_peak(None, Box(0, 0, 20, 20)) is None and heatmap_peak(heat * 0, Box(0, 0, 2, 2)) is None


@pytest.mark.parametrize("roi", [None, "216,216,80,80"])
def test_ct_slice_in_a_us_tagged_dicom_is_refused_with_or_without_roi(tmp_path: Path, roi: str | None):
    from lesiondx.io import read_study
    from lesiondx.io.windows import apply_window

    sys.path.insert(0, str(REPO / "tests" / "io"))
    from us_dicom_kinds import _base, _grey

    ct = read_study(shared_dataset("chest_ct_lung_cancer") / "series" / "A0002")
    grey = apply_window(ct.pixels[24], "abdomen").astype(np.uint8)
    path = tmp_path / "ct_slice_tagged_us_synthetic.dcm"
    _grey(_base(*grey.shape), grey).save_as(path, enforce_file_format=True)
    with pytest.raises(InputRefused, match=r"ct_slice_tagged_us_synthetic.dcm: .*tagged US but its pixels do not look"):
        task.predict([path], "default", None, cam=False, roi=roi)
