"""The us-liver gate flags a frame whose scan sector does not narrow towards the top: real AUL frames turned by 90°
or flipped upside down (synthetic copies: sector apex at a side or at the bottom), and passes the same real frames
upright and left-right mirrored (a legitimate display choice)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lesiondx.gate import check
from lesiondx.io import read_image
from lesiondx_testdata import EXAMPLES

FRAMES = sorted((EXAMPLES / "aul_liver_us_mini" / "images").glob("*.jpg"))
TURNS = {"upright": lambda a: a, "mirrored_left_right": lambda a: a[:, ::-1], "upside_down": lambda a: a[::-1],
         "rotated_90": lambda a: np.rot90(a), "rotated_270": lambda a: np.rot90(a, 3)}


@pytest.mark.parametrize("turn", list(TURNS))
def test_synthetic_rotated_or_upside_down_frames_are_flagged_mirrored_ones_pass(tmp_path: Path, turn: str):
    if not FRAMES:
        pytest.skip("examples/aul_liver_us_mini missing")
    for frame in FRAMES:
        path = tmp_path / f"{frame.stem}_{turn}.png"
        with Image.open(frame) as img:
            Image.fromarray(np.ascontiguousarray(TURNS[turn](np.asarray(img.convert("RGB"))))).save(path)
        verdict = check("us-liver", read_image(path))
        status = verdict.checks["orientation"]["status"]
        if turn in ("upright", "mirrored_left_right"):
            assert status == "ok" and verdict.status == "ok", (frame.name, verdict.reasons)
        else:
            assert status == "flagged" and verdict.status == "flagged", (frame.name, verdict.checks["orientation"])
            assert any("not the top" in r and "transducer at the top" in r for r in verdict.reasons), verdict.reasons


def test_a_linear_probe_rectangle_and_a_tiny_echo_area_are_not_judged():
    """Synthetic: a rectangular (linear-probe) echo area narrows nowhere; a speck gives no measure."""
    from lesiondx.gate.us_liver import orientation_check, sector_narrowing

    rng = np.random.default_rng(0)
    grey = np.zeros((480, 640), np.float32)
    grey[40:440, 120:520] = rng.uniform(30, 120, (400, 400))
    image = read_image(EXAMPLES / "aul_liver_us_mini" / "images" / "benign_001.jpg") if FRAMES else None
    if image is None:
        pytest.skip("examples/aul_liver_us_mini missing")
    assert orientation_check(image.with_pixels(grey)).status == "ok"
    speck = np.zeros((480, 640), np.float32)
    speck[10:14, 10:14] = 200
    assert sector_narrowing(speck) is None
