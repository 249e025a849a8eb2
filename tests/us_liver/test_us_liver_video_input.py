"""A cine clip saved as a video (MP4 container; SYNTHETIC header bytes) and renamed .jpg, .dcm or left without a
suffix is refused by us-liver predict in one line naming the file and saying it is a video (was: "not a readable
image (UnidentifiedImageError ...)" or "not a DICOM file"); a HEIC phone photo is not called a video."""

from __future__ import annotations

from pathlib import Path

import pytest

from lesiondx.io import ImageReadError
from lesiondx.us_liver.inputs import read_us_inputs

MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(2000)  # SYNTHETIC: an MP4's first box


@pytest.mark.parametrize("name", ["clip_SYNTHETIC.jpg", "clip_SYNTHETIC.dcm", "clip_SYNTHETIC", "clip_SYNTHETIC.mp4"])
def test_video_renamed_as_a_frame_is_refused_as_a_video(tmp_path: Path, name: str):
    path = tmp_path / name
    path.write_bytes(MP4_HEAD)
    with pytest.raises(ImageReadError) as raised:
        read_us_inputs([path])
    assert raised.value.path == path and "a video file (MP4 / QuickTime)" in raised.value.reason
    assert "multi-frame ultrasound DICOM" in raised.value.reason


def test_heic_photo_is_not_called_a_video(tmp_path: Path):
    path = tmp_path / "photo_SYNTHETIC.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(100))
    with pytest.raises(ImageReadError) as raised:
        read_us_inputs([path])
    assert "video" not in raised.value.reason
