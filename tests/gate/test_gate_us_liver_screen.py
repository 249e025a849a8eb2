"""The us-liver gate flags frames that reach it as a sonographer's colleagues send them, ALTERED from a bundled real
AUL frame: a colour Doppler box over the lesion (flow in under 1 % of the frame, below the whole-frame 2 % colour
flag), a phone photo of the scanner's screen (lifted blacks, moiré, glare), a 16-colour palette PNG and a 16-bit PNG
(stretched min..max); the same frame as it is, as a 256-grey palette PNG and as a 16-bit PNG holding its 8-bit values
passes; and text typed over the sector. Before 2026-12-06 all of these were answered unflagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from lesiondx.data import mask_box
from lesiondx.gate import check
from lesiondx.io import read_image
from lesiondx_testdata import EXAMPLES

MINI = EXAMPLES / "aul_liver_us_mini"
STEM = "malignant_010"


@pytest.fixture(scope="module")
def frame() -> tuple[Image.Image, object]:
    path = MINI / "images" / f"{STEM}.jpg"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    with Image.open(path) as img, Image.open(MINI / "masks" / "mass" / f"{STEM}.png") as mask:
        return img.convert("RGB"), mask_box(np.asarray(mask.convert("L")) > 127)


def doppler_box(rgb: Image.Image, box) -> Image.Image:
    """ALTERED: a grey colour box around the lesion with red and blue flow streaks (about 0.4 % of the frame)."""
    out = rgb.copy()
    draw = ImageDraw.Draw(out)
    x0, y0, x1, y1 = box.x1 - 20, box.y1 - 20, box.x2 + 20, box.y2 + 20
    rng = np.random.default_rng(0)
    for i in range(14):
        cx, cy = int(rng.integers(x0, x1)), int(rng.integers(y0, y1))
        draw.ellipse([cx - 4, cy - 14, cx + 4, cy + 14], fill=(220, 40, 30) if i % 2 else (40, 80, 230))
    draw.rectangle([x0, y0, x1, y1], outline=(200, 200, 200))
    return out


def phone_photo(rgb: Image.Image) -> Image.Image:
    """ALTERED: the frame as a phone photographs the screen: room light lifts its blacks, moiré, a glare spot,
    the desk around it."""
    a = np.asarray(rgb, np.float32)
    h, w = a.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    a = a * (1 + 0.12 * np.sin(0.9 * xx + 0.35 * yy))[..., None]
    a = a + 140 * np.exp(-(((xx - 0.7 * w) / 90) ** 2 + ((yy - 0.3 * h) / 60) ** 2))[..., None]
    a = a + 16 + np.random.default_rng(0).normal(0, 4, (h, w))[..., None]
    desk = Image.new("RGB", (w + 300, h + 200), (60, 55, 50))
    desk.paste(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)), (150, 100))
    return desk


def _verdict(tmp_path: Path, img: Image.Image, name: str, **save):
    path = tmp_path / name
    img.save(path, **save)
    return check("us-liver", read_image(path))


def test_colour_doppler_box_over_the_lesion_is_flagged(tmp_path: Path, frame):
    rgb, box = frame
    for suffix in (".png", ".jpg"):
        verdict = _verdict(tmp_path, doppler_box(rgb, box), f"doppler_ALTERED{suffix}")
        assert verdict.status == "flagged", verdict.reasons
        assert verdict.checks["photometric"]["status"] == "ok"  # under 2 % of the frame: the old check missed it
        assert verdict.checks["sector_colour"]["status"] == "flagged", verdict.checks["sector_colour"]
        assert any("colour Doppler" in r for r in verdict.reasons)
    assert _verdict(tmp_path, rgb, "clean.png").checks["sector_colour"]["status"] == "ok"


def test_phone_photo_of_the_screen_is_flagged(tmp_path: Path, frame):
    rgb, _ = frame
    for name, img in (("photo_ALTERED.jpg", phone_photo(rgb)), ("photo_portrait_ALTERED.jpg",
                                                                phone_photo(rgb).rotate(90, expand=True))):
        verdict = _verdict(tmp_path, img, name, quality=85)
        assert verdict.status == "flagged", (name, verdict.reasons)
        assert verdict.checks["screen"]["status"] == "flagged", (name, verdict.checks["screen"])
        assert any("photo of the screen" in r for r in verdict.reasons), name
    clean = _verdict(tmp_path, rgb, "clean.png")
    assert clean.status == "ok" and clean.checks["screen"]["value"]["black_background_share"] > 0.35


def test_posterised_palette_png_is_flagged_a_full_palette_passes(tmp_path: Path, frame):
    rgb, _ = frame
    few = _verdict(tmp_path, rgb.convert("L").quantize(16), "palette16_ALTERED.png")
    assert few.status == "flagged" and few.checks["screen"]["status"] == "flagged" and any("16 grey levels" in r for r in few.reasons)
    full = _verdict(tmp_path, rgb.convert("L").convert("P"), "palette256.png")
    assert full.status == "ok", full.reasons


def test_16_bit_png_is_flagged_when_stretched_not_when_it_holds_8_bit_values(tmp_path: Path, frame):
    rgb, _ = frame
    grey = np.asarray(rgb.convert("L")).astype(np.uint16)
    wide = _verdict(tmp_path, Image.fromarray(grey * 257), "wide16_ALTERED.png")
    assert wide.status == "flagged" and wide.checks["screen"]["status"] == "flagged" and any("more than 8 bits" in r for r in wide.reasons)
    narrow = Image.new("I;16", rgb.size)
    narrow.frombytes(grey.astype("<u2").tobytes(), "raw", "I;16")
    assert _verdict(tmp_path, narrow, "narrow16.png").status == "ok"


@pytest.mark.parametrize(("text", "fill"), [("LIVER RT LOBE", (255, 255, 255)), ("D1 2.31 cm", (255, 255, 0)),
                                            ("SUBCOSTAL", (0, 255, 0))])
def test_text_typed_over_the_sector_is_flagged(tmp_path: Path, frame, text: str, fill: tuple):
    """ALTERED: an annotation or a measurement label typed over the liver below the lesion (16-px type, scanner
    colours); the frame without it passes."""
    rgb, box = frame
    out = rgb.copy()
    ImageDraw.Draw(out).text((box.x1 - 10, box.y2 + 25), text, fill=fill, font=ImageFont.load_default(size=16))
    verdict = _verdict(tmp_path, out, "text_ALTERED.png")
    assert verdict.status == "flagged", verdict.reasons
    assert verdict.checks["text"]["status"] == "flagged", verdict.checks["text"]
    assert any("line of text" in r and "without annotations" in r for r in verdict.reasons)
    assert _verdict(tmp_path, rgb, "clean.png").checks["text"]["value"]["longest_text_row_glyphs"] < 5
