"""A body-marker icon (a torso outline with a liver and a probe bar) moved over the lesion of a bundled real AUL
frame (ALTERED) is flagged by the us-liver gate; it changed the shipped model's call on 3 of 30 AUL lesion frames
(2026-12-06) and was answered unflagged before. The same frames as they are pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lesiondx.data import mask_box
from lesiondx.gate import check
from lesiondx.io import read_image
from lesiondx_testdata import EXAMPLES

MINI = EXAMPLES / "aul_liver_us_mini"
LESION_FRAMES = sorted(p.stem for p in (MINI / "masks" / "mass").glob("*.png"))


def draw_body_marker(img: Image.Image, cx: int, cy: int, colour: tuple[int, int, int]) -> None:
    """ALTERED: a 45×35 px torso outline, a liver outline inside it and a 3-px probe bar, centred at (cx, cy)."""
    draw = ImageDraw.Draw(img)
    draw.ellipse([cx - 22, cy - 17, cx + 22, cy + 17], outline=colour, width=1)
    draw.polygon([(cx - 14, cy - 8), (cx + 2, cy - 10), (cx - 2, cy + 4), (cx - 14, cy + 2)], outline=colour)
    draw.line([(cx + 6, cy + 10), (cx + 18, cy - 2)], fill=colour, width=3)


@pytest.mark.parametrize(("colour", "suffix"), [((255, 255, 255), ".png"), ((255, 255, 0), ".png"),
                                                 ((255, 255, 255), ".jpg")])
def test_body_marker_over_the_lesion_is_flagged(tmp_path: Path, colour: tuple[int, int, int], suffix: str):
    if not LESION_FRAMES:
        pytest.skip("examples/aul_liver_us_mini missing")
    for stem in LESION_FRAMES:
        with Image.open(MINI / "images" / f"{stem}.jpg") as img, Image.open(MINI / "masks" / "mass" / f"{stem}.png") as m:
            rgb, box = img.convert("RGB"), mask_box(np.asarray(m.convert("L")) > 127)
        draw_body_marker(rgb, (box.x1 + box.x2) // 2, (box.y1 + box.y2) // 2, colour)
        path = tmp_path / f"{stem}_body_marker_ALTERED{suffix}"
        rgb.save(path, **({"quality": 90} if suffix == ".jpg" else {}))
        verdict = check("us-liver", read_image(path))
        assert verdict.checks["icon"]["status"] == "flagged", (stem, verdict.checks["icon"])
        assert any("body-marker icon" in r for r in verdict.reasons)


def test_bundled_frames_as_they_are_have_no_icon():
    if not LESION_FRAMES:
        pytest.skip("examples/aul_liver_us_mini missing")
    for path in sorted((MINI / "images").glob("*.jpg")):
        verdict = check("us-liver", read_image(path))
        assert verdict.checks["icon"]["status"] == "ok", (path.name, verdict.checks["icon"])
