"""A user lesion ROI that cannot describe a lesion (a pixel or two, drawn in the black border outside the scan
sector, covering the whole sector, a mask file that is not there) is refused with one line naming the frame,
instead of a confident benign/malignant answer; a real lesion box still scores. Shipped model, real AUL frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lesiondx.io import ImageReadError
from lesiondx.us_liver import task
from lesiondx.us_liver.inference import DEFAULT_MODEL
from lesiondx.us_liver.user_roi import user_roi_problem

IMAGE = Path(__file__).resolve().parents[2] / "examples" / "aul_liver_us_mini" / "images" / "malignant_010.jpg"


def _box(shape: tuple[int, int], x: int, y: int, w: int, h: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y : y + h, x : x + w] = True
    return mask


def test_user_roi_problem_rules():
    sector = _box((100, 100), 20, 20, 60, 60)
    assert user_roi_problem(_box((100, 100), 40, 40, 10, 10), sector) is None
    assert "at least 8 px" in user_roi_problem(_box((100, 100), 40, 40, 1, 1), sector)
    assert "inside the scan sector" in user_roi_problem(_box((100, 100), 0, 0, 15, 15), sector)
    assert "covers" in user_roi_problem(_box((100, 100), 0, 0, 100, 100), sector)
    assert user_roi_problem(_box((100, 100), 0, 0, 15, 15), np.zeros((100, 100), bool)) is None  # no sector found


@pytest.fixture(scope="module")
def frame() -> Path:
    if not (DEFAULT_MODEL / "us_liver.pt").is_file() or not IMAGE.is_file():
        pytest.skip("shipped model or example frame missing")
    return IMAGE


@pytest.mark.parametrize(("roi", "reason"), [
    ("300,300,1,1", "at least 8 px"),
    ("0,0,60,60", "inside the scan sector"),  # the black border top left, outside the fan
    ("0,0,5000,5000", "covers"),
    ("/nowhere/lesion_mask.png", "not found"),
])
def test_unusable_user_roi_is_refused_naming_the_frame(frame: Path, roi: str, reason: str):
    with pytest.raises(ImageReadError, match=reason) as info:
        task.predict([frame], "default", None, roi=roi, cam=False)
    assert info.value.path == frame and "\n" not in str(info.value)


def test_a_lesion_box_inside_the_sector_still_scores(frame: Path):
    r = task.predict([frame], "default", None, roi="400,300,120,100", cam=False)["results"][0]
    assert r["roi_source"] == "user" and r["box"] == [400, 300, 520, 400] and 0 <= r["probability"] <= 1


def test_one_roi_for_several_files_is_refused(frame: Path):
    other = frame.with_name("benign_001.jpg")  # another patient's frame: the box would miss its lesion
    with pytest.raises(ImageReadError, match="lesion box of one image"):
        task.predict([frame, other], "default", None, roi="400,300,120,100", cam=False)
