"""A cine (multi-frame US DICOM) is checked frame by frame: calipers and colour Doppler switched on mid-clip are
flagged, naming the frames. ALTERED clips written with pydicom from a bundled real AUL frame (small shifts between
frames, as a probe moves); before 2026-12-06 only frame 0's sector was checked and these clips passed unflagged."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lesiondx.data import mask_box
from lesiondx.gate import check
from lesiondx.gate.us_liver import MAX_CLIP_FRAMES, clip_frames
from lesiondx.io import read_image
from lesiondx.us_liver.inputs import read_us_inputs
from lesiondx_testdata import EXAMPLES
from test_gate_us_liver_calipers import draw_calipers
from test_gate_us_liver_screen import doppler_box

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from us_dicom_kinds import _base, _rgb  # noqa: E402

MINI = EXAMPLES / "aul_liver_us_mini"
STEM = "malignant_010"


@pytest.fixture(scope="module")
def frame():
    path = MINI / "images" / f"{STEM}.jpg"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    with Image.open(path) as img, Image.open(MINI / "masks" / "mass" / f"{STEM}.png") as mask:
        return img.convert("RGB"), mask_box(np.asarray(mask.convert("L")) > 127)


def write_clip(path: Path, frames: list[Image.Image]) -> Path:
    """ALTERED: an RGB multi-frame US DICOM of ``frames`` (each rolled 2 px further down, as a probe moves)."""
    stack = np.stack([np.roll(np.asarray(f), 2 * i, axis=0) for i, f in enumerate(frames)])
    ds = _base(*stack.shape[1:3], frames=len(frames))
    _rgb(ds, stack).save_as(path, enforce_file_format=True)
    return path


def with_calipers(rgb: Image.Image, box) -> Image.Image:
    out = rgb.copy()
    cy = (box.y1 + box.y2) // 2
    draw_calipers(out, [(box.x1, cy), (box.x2 - 1, cy)], "x", "yellow", 7, 1)
    return out


def test_calipers_switched_on_mid_clip_are_flagged_naming_the_frames(tmp_path: Path, frame):
    rgb, box = frame
    clean = write_clip(tmp_path / "clip_clean_ALTERED.dcm", [rgb] * 5)
    marked = write_clip(tmp_path / "clip_calipers_ALTERED.dcm", [rgb] * 3 + [with_calipers(rgb, box)] * 2)
    assert check("us-liver", read_image(clean)).checks["marks"]["status"] == "ok"
    verdict = check("us-liver", read_image(marked))
    marks = verdict.checks["marks"]
    assert marks["status"] == "flagged"
    assert marks["value"]["frames_flagged"] == [3, 4] and marks["value"]["frames_checked"] == 5
    assert marks["value"]["frame"] == 3 and marks["value"]["frame_value"]["caliper_crosses"]
    assert any("cine frame(s) 3, 4 (2 of 5; all 5 frames checked)" in r and "caliper" in r for r in verdict.reasons)


def test_doppler_box_mid_clip_flags_every_scored_frame_of_predict(tmp_path: Path, frame):
    """Through predict's reader (every frame of the clip is scored): the clip's verdict, which each frame carries,
    is flagged and names the coloured frames."""
    rgb, box = frame
    clip = write_clip(tmp_path / "clip_doppler_ALTERED.dcm", [rgb] * 2 + [doppler_box(rgb, box)] * 2 + [rgb])
    items = read_us_inputs([clip])
    assert [item.frame for item in items] == [0, 1, 2, 3, 4]
    verdict = items[0].verdict
    assert verdict.status == "flagged" and all(item.verdict is verdict for item in items)
    assert verdict.checks["sector_colour"]["value"]["frames_flagged"] == [2, 3]
    assert any(r.startswith("cine frame(s) 2, 3 (2 of 5") and "Doppler" in r for r in verdict.reasons)
    one = read_us_inputs([clip], frame=1)  # --frame 1: that frame alone, which is clean
    assert one[0].verdict.checks["sector_colour"]["status"] == "ok"


def test_a_long_clip_is_checked_on_a_bounded_spread_of_frames():
    assert clip_frames(10) == list(range(10))
    spread = clip_frames(500)
    assert len(spread) == MAX_CLIP_FRAMES and spread[0] == 0 and spread[-1] == 499
    assert spread == sorted(set(spread))
