"""A blank frame (black, or one flat grey level: a frozen or cleared screen, a blank cine frame) is refused by the
us-liver gate with one line naming the file, never answered "no focal lesion found"; a real AUL frame at a quarter
of its gain still passes. Ultrasound DICOM written with pydicom from a real AUL frame (tests/io/us_dicom_kinds)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lesiondx.gate import InputRefused, check
from lesiondx.io import ImageReadError, read_image
from lesiondx.us_liver import task
from lesiondx.us_liver.inference import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "examples" / "aul_liver_us_mini" / "images" / "malignant_010.jpg"
sys.path.insert(0, str(REPO / "tests" / "io"))
from us_dicom_kinds import _base, _grey  # noqa: E402


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    if not IMAGE.is_file():
        pytest.skip(f"{IMAGE} missing")
    with Image.open(IMAGE) as img:
        return np.asarray(img.convert("L"))


def _dicom(path: Path, frames: np.ndarray) -> Path:
    n, rows, cols = frames.shape
    _grey(_base(rows, cols, frames=n), frames).save_as(path, enforce_file_format=True)
    return path


def test_gate_refuses_blank_frames_and_keeps_a_dark_real_one(grey: np.ndarray, tmp_path: Path):
    for name, pixels in (("black.png", np.zeros_like(grey)), ("flat.png", np.full_like(grey, 128))):
        Image.fromarray(pixels).save(tmp_path / name)
        verdict = check("us-liver", read_image(tmp_path / name))
        assert verdict.status == "refused" and any("blank" in r for r in verdict.reasons), name
    Image.fromarray((grey * 0.25).astype(np.uint8)).save(tmp_path / "dark.png")
    assert check("us-liver", read_image(tmp_path / "dark.png")).checks["content"]["status"] == "ok"


def test_predict_refuses_a_black_us_dicom_and_a_cine_with_a_blank_frame(grey: np.ndarray, tmp_path: Path):
    if not (DEFAULT_MODEL / "us_liver.pt").is_file():
        pytest.skip("shipped model missing")
    black = _dicom(tmp_path / "black.dcm", np.zeros((1, *grey.shape), np.uint8))
    with pytest.raises(InputRefused, match="black.dcm: .*blank"):
        task.predict([black], "default", None, cam=False)
    cine = _dicom(tmp_path / "cine.dcm", np.stack([grey, np.zeros_like(grey), grey]))
    with pytest.raises(ImageReadError, match=r"cine.dcm: .*frame 1: the frame is blank.*--frame N") as info:
        task.predict([cine], "default", None, cam=False)
    assert "\n" not in str(info.value)
    ok = task.predict([cine], "default", None, cam=False, frame=2)["results"]
    assert len(ok) == 1 and ok[0]["label"] in ("benign", "malignant", "no focal lesion found")


def test_frame_of_a_single_frame_jpeg_is_refused_not_ignored(tmp_path: Path):
    """--frame 1 on a JPEG used to score the one frame and report it as "frame": 1."""
    if not IMAGE.is_file():
        pytest.skip(f"{IMAGE} missing")
    with pytest.raises(ImageReadError, match=r"malignant_010.jpg: frame 1 does not exist \(a .jpg file holds one frame"):
        task.predict([IMAGE], "default", None, cam=False, frame=1)
