"""The us-liver gate flags caliper crosses drawn inside the scan sector (two white '+' marks at a real AUL lesion's
ends: synthetic copies) and passes the same real frames without them, or with a cross outside the sector; and flags
two real frames put side by side (a synthetic split screen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lesiondx.data import mask_box
from lesiondx.gate import check
from lesiondx.io import read_image
from lesiondx_testdata import EXAMPLES

MINI = EXAMPLES / "aul_liver_us_mini"
LESION_FRAMES = sorted(p.stem for p in (MINI / "masks" / "mass").glob("*.png"))


def _cross(grey: np.ndarray, x: int, y: int, arm: int = 8) -> None:
    """A synthetic caliper '+': 3 px thick, ``arm`` px each way, white."""
    grey[max(0, y - arm) : y + arm + 1, max(0, x - 1) : x + 2] = 255
    grey[max(0, y - 1) : y + 2, max(0, x - arm) : x + arm + 1] = 255


@pytest.mark.parametrize("marks", ["none", "at_lesion_ends", "outside_sector"])
def test_synthetic_caliper_crosses_on_the_lesion_are_flagged(tmp_path: Path, marks: str):
    if not LESION_FRAMES:
        pytest.skip("examples/aul_liver_us_mini missing")
    for stem in LESION_FRAMES:
        with Image.open(MINI / "images" / f"{stem}.jpg") as img:
            grey = np.asarray(img.convert("L")).copy()
        with Image.open(MINI / "masks" / "mass" / f"{stem}.png") as img:
            box = mask_box(np.asarray(img.convert("L")) > 127)
        cy = (box.y1 + box.y2) // 2
        if marks == "at_lesion_ends":
            _cross(grey, box.x1, cy)
            _cross(grey, box.x2 - 1, cy)
        elif marks == "outside_sector":
            _cross(grey, 12, 12)  # the black top-left corner, outside the fan
        path = tmp_path / f"{stem}_{marks}_synthetic.png"
        Image.fromarray(grey).save(path)
        verdict = check("us-liver", read_image(path))
        found = verdict.checks["marks"]["value"]["caliper_crosses"]
        if marks == "at_lesion_ends":
            assert verdict.checks["marks"]["status"] == "flagged", stem
            assert any(abs(x - box.x1) <= 3 and abs(y - cy) <= 3 for x, y in found), (stem, found)
            assert any("caliper" in r and "without measurements" in r for r in verdict.reasons)
        else:
            assert verdict.checks["marks"]["status"] == "ok" and found == [], (stem, found)


def test_synthetic_split_screen_frame_is_flagged_single_views_pass(tmp_path: Path):
    """Two real AUL frames side by side (a synthetic dual-view screen) are flagged; each alone passes."""
    frames = sorted((MINI / "images").glob("*.jpg"))
    if len(frames) < 2:
        pytest.skip("examples/aul_liver_us_mini missing")
    for left, right in zip(frames, frames[1:]):
        with Image.open(left) as a, Image.open(right) as b:
            grey_a, grey_b = np.asarray(a.convert("L")), np.asarray(b.convert("L").resize(a.size))
        dual = tmp_path / f"{left.stem}_{right.stem}_dual_synthetic.png"
        Image.fromarray(np.concatenate([grey_a, grey_b], axis=1)).save(dual)
        verdict = check("us-liver", read_image(dual))
        assert verdict.checks["layout"]["status"] == "flagged", (left.name, right.name, verdict.checks["layout"])
        assert any("side by side" in r for r in verdict.reasons)
        assert check("us-liver", read_image(left)).checks["layout"]["status"] == "ok", left.name
