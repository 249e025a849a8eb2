"""Patient-grouped splits and ROIs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from lesiondx.data import (
    Box, background_roi, boxes_from_mask, external_split, grouped_kfold, grouped_split, lesion_roi, load_manifest,
    mask_box, patients_on_several_sides, quadrant, require_patients_per_label,
)


def test_split_never_puts_one_patient_on_two_sides(aul_folder):
    frame = load_manifest(aul_folder).frame
    assert frame["patient_id"].duplicated().any(), "AUL has grouped frames; the test needs them"
    for seed in range(3):
        split = grouped_split(frame, val=0.15, test=0.15, seed=seed)
        assert patients_on_several_sides(frame, split) == []
        shares = split.value_counts(normalize=True)
        assert 0.08 < shares["test"] < 0.25 and 0.08 < shares["val"] < 0.25
        for part in ("train", "test"):  # stratified: each part sees each class in similar shares
            malignant = (frame.label[split == part] == "malignant").mean()
            assert abs(malignant - (frame.label == "malignant").mean()) < 0.1


def test_kfold_groups_patients_and_covers_all_rows():
    frame = pd.DataFrame({"patient_id": [f"p{i // 2}" for i in range(40)], "label": ["a", "b"] * 20})
    folds = grouped_kfold(frame, k=5, seed=1)
    assert set(folds) == {0, 1, 2, 3, 4}
    assert patients_on_several_sides(frame, pd.Series(folds)) == []
    with pytest.raises(ValueError, match="cannot make 5 folds from 3 patients"):
        grouped_kfold(frame.iloc[:6], k=5)


def test_kfold_with_a_label_short_of_patients_leaves_the_warning_to_the_caller():
    """A raw scikit-learn UserWarning ('The least populated class ...') reached the user's terminal in train; the
    callers say it in their own words (require_patients_per_label)."""
    frame = pd.DataFrame({"patient_id": [f"p{i}" for i in range(12)], "label": ["benign"] * 10 + ["malignant"] * 2})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folds = grouped_kfold(frame, k=3)
    assert set(folds) == {0, 1, 2}
    with pytest.raises(ValueError, match=r"labels.csv: too few patients for 3 folds: 'malignant' has 2 \(each label "
                                         r"needs at least 3 patients, one in every fold\); add patients of that "
                                         r"label, or lower folds in the config \(now 3, at least 2\)"):
        require_patients_per_label(frame, 3, where="labels.csv")
    require_patients_per_label(frame, 2, where="labels.csv")


def test_external_split_by_centre_and_date():
    frame = pd.DataFrame({"centre": ["A", "B", "C"], "date": ["2020-01-01", "2021-06-01", "2022-01-01"]})
    assert list(external_split(frame, "centre", test_values=["C"])) == ["train", "train", "test"]
    assert list(external_split(frame, "date", on_or_after="2021-01-01")) == ["train", "test", "test"]
    with pytest.raises(ValueError, match="no column 'site'"):
        external_split(frame, "site", test_values=["A"])


def test_boxes_quadrants_and_iou():
    mask = np.zeros((100, 100), np.uint8)
    mask[10:20, 60:80] = 1
    mask[70:75, 5:10] = 1
    boxes = sorted(boxes_from_mask(mask), key=lambda b: b.y1)
    assert boxes == [Box(60, 10, 80, 20), Box(5, 70, 10, 75)]
    assert [quadrant(b, mask.shape) for b in boxes] == ["upper-right", "lower-left"]
    assert boxes_from_mask(mask, min_area=30) == [Box(60, 10, 80, 20)]
    assert Box(0, 0, 10, 10).iou(Box(5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert mask_box(np.zeros((3, 3))) is None


def test_lesion_roi_fixed_scale_does_not_magnify_small_lesions():
    image = np.zeros((200, 200), np.float32)
    mask = np.zeros_like(image)
    mask[95:105, 95:105] = 1
    image[mask > 0] = 255
    magnified = lesion_roi(image, mask, margin=0.25, size=64)
    fixed = lesion_roi(image, mask, margin=0.25, size=64, side=100)
    assert magnified.shape == fixed.shape == (64, 64)
    assert (magnified > 128).mean() > 0.3  # lesion fills the magnified crop
    assert 0.005 < (fixed > 128).mean() < 0.03  # about (10/100)^2 of the fixed-scale crop


def test_background_roi_excludes_the_lesion():
    image = np.full((100, 100), 50, np.float32)
    liver = np.zeros_like(image)
    liver[20:80, 20:80] = 1
    lesion = np.zeros_like(image)
    lesion[40:50, 40:50] = 1
    image[lesion > 0] = 250
    roi = background_roi(image, liver, lesion, margin_px=3, size=32)
    assert roi.max() < 100  # no lesion pixel survives
    assert roi.mean() > 20  # mostly liver background
