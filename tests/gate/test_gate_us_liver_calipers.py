"""The us-liver gate flags caliper marks as real scanners draw them (ALTERED copies of the bundled real AUL frames):
'+' or 'x', yellow, green, cyan or white, arms 5-10 px, strokes 1-2 px, a dotted line between the pair and a
"D1 2.31 cm" label, saved as PNG and as a scanner's JPEG export (quality 90, colour subsampled). Before 2026-12-06
only saturated white '+' marks with arms of 6 px were found: every coloured mark and every 'x' passed as a clean
frame."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lesiondx.data import mask_box
from lesiondx.gate import check
from lesiondx.io import read_image
from lesiondx_testdata import EXAMPLES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from us_dicom_kinds import _base, _rgb  # noqa: E402

MINI = EXAMPLES / "aul_liver_us_mini"
LESION_FRAMES = sorted(p.stem for p in (MINI / "masks" / "mass").glob("*.png"))
COLOURS = {"white": (255, 255, 255), "yellow": (255, 255, 0), "green": (0, 255, 0), "cyan": (0, 255, 255)}


def draw_calipers(img: Image.Image, ends: list[tuple[int, int]], shape: str, colour: str, arm: int, stroke: int) -> None:
    """ALTERED: two caliper marks at ``ends`` (x, y px), a dotted line between them and a measurement label."""
    fill, draw = COLOURS[colour], ImageDraw.Draw(img)
    (x1, y1), (x2, y2) = ends
    n = max(2, int(np.hypot(x2 - x1, y2 - y1) // 6))
    for t in np.linspace(0, 1, n + 1)[1:-1]:  # 2-px dots every ~6 px, kept clear of the marks
        px, py = x1 + t * (x2 - x1), y1 + t * (y2 - y1)
        if min(np.hypot(px - x1, py - y1), np.hypot(px - x2, py - y2)) > arm + 4:
            draw.rectangle([px, py, px + 1, py + 1], fill=fill)
    for x, y in ends:
        a = arm if shape == "+" else int(round(arm / 2**0.5))  # an 'x' arm of ``arm`` px along its diagonal
        strokes = [((x - a, y), (x + a, y)), ((x, y - a), (x, y + a))] if shape == "+" else \
            [((x - a, y - a), (x + a, y + a)), ((x - a, y + a), (x + a, y - a))]
        for stroke_ends in strokes:
            draw.line(stroke_ends, fill=fill, width=stroke)
    draw.text((20, img.height - 40), "D1 2.31 cm", fill=fill)


@pytest.mark.parametrize(("shape", "colour", "arm", "stroke", "suffix"), [
    ("+", "yellow", 5, 1, ".jpg"), ("x", "green", 7, 1, ".jpg"), ("x", "cyan", 10, 2, ".png"),
    ("+", "green", 8, 2, ".png"), ("x", "white", 6, 1, ".png"), ("+", "white", 5, 2, ".jpg")])
def test_scanner_style_calipers_at_the_lesion_ends_are_flagged(tmp_path: Path, shape: str, colour: str, arm: int,
                                                              stroke: int, suffix: str):
    if not LESION_FRAMES:
        pytest.skip("examples/aul_liver_us_mini missing")
    for stem in LESION_FRAMES:
        with Image.open(MINI / "images" / f"{stem}.jpg") as img:
            rgb = img.convert("RGB")
        with Image.open(MINI / "masks" / "mass" / f"{stem}.png") as img:
            box = mask_box(np.asarray(img.convert("L")) > 127)
        cy = (box.y1 + box.y2) // 2
        ends = [(box.x1, cy), (box.x2 - 1, cy)]
        draw_calipers(rgb, ends, shape, colour, arm, stroke)
        path = tmp_path / f"{stem}_calipers_ALTERED{suffix}"
        rgb.save(path, **({"quality": 90} if suffix == ".jpg" else {}))
        verdict = check("us-liver", read_image(path))
        found = verdict.checks["marks"]["value"]["caliper_crosses"]
        assert verdict.checks["marks"]["status"] == "flagged", (stem, found)
        assert any(abs(x - fx) <= 3 and abs(y - fy) <= 3 for x, y in ends for fx, fy in found), (stem, found)
        assert any("caliper" in r and "without measurements" in r for r in verdict.reasons)


def test_clean_bundled_frames_have_no_marks_and_their_colour_is_read():
    """The same real frames as they are (colour JPEGs: chroma kept by the reader) pass the marks check."""
    if not LESION_FRAMES:
        pytest.skip("examples/aul_liver_us_mini missing")
    for path in sorted((MINI / "images").glob("*.jpg")):
        image = read_image(path)
        assert image.chroma is None or image.chroma.shape == image.pixels.shape
        verdict = check("us-liver", image)
        assert verdict.checks["marks"]["status"] == "ok", (path.name, verdict.checks["marks"])


def test_yellow_calipers_in_an_rgb_ultrasound_dicom_are_flagged(tmp_path: Path):
    """A scanner's RGB US DICOM (written with pydicom from a real AUL frame, ALTERED with yellow 'x' calipers): the
    reader keeps the frame's chroma, the gate finds the marks; the frame without them passes."""
    if not LESION_FRAMES:
        pytest.skip("examples/aul_liver_us_mini missing")
    stem = LESION_FRAMES[0]
    with Image.open(MINI / "images" / f"{stem}.jpg") as img:
        rgb = img.convert("RGB")
    with Image.open(MINI / "masks" / "mass" / f"{stem}.png") as img:
        box = mask_box(np.asarray(img.convert("L")) > 127)
    clean = np.asarray(rgb)
    draw_calipers(rgb, [(box.x1, box.y1), (box.x2 - 1, box.y2 - 1)], "x", "yellow", 7, 1)
    for name, pixels, status in (("clean", clean, "ok"), ("calipers_ALTERED", np.asarray(rgb), "flagged")):
        path = tmp_path / f"{name}.dcm"
        _rgb(_base(*pixels.shape[:2]), pixels).save_as(path, enforce_file_format=True)
        assert check("us-liver", read_image(path)).checks["marks"]["status"] == status, name


def test_fast_line_opening_matches_scipy():
    """The caliper search's shifted-slice opening gives the same pixels as ``ndimage.binary_opening`` for every
    stroke element it uses, on SYNTHETIC random masks (borders included)."""
    from scipy import ndimage

    from lesiondx.gate.us_graphics import CROSS_SHAPES, MARK_THICK, _opening, _stroke

    rng = np.random.default_rng(0)
    masks = [rng.random(shape) > share for shape in ((60, 50), (13, 11)) for share in (0.2, 0.5)]
    for mask in [*masks, np.ones((20, 30), bool)]:
        for strokes, reach, _ in CROSS_SHAPES.values():
            for step in strokes:
                for width in (1, MARK_THICK + 2):
                    element = _stroke(step, 2 * reach + 1, width)
                    assert (_opening(mask, element) == ndimage.binary_opening(mask, element)).all(), (step, width)
