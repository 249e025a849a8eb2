"""us-liver input gate: a greyscale B-mode ultrasound frame (DICOM Modality US, or a raster the modality
probe calls ultrasound), not a CT slice; colour (Doppler, colour maps) is flagged; a frame smaller than every
AUL frame the model was fitted on (the smallest: 440 px wide, 341 px high) is flagged: downscaled or exported
teaching frames were not validated (300×225 px ones gave AUC ≈ 0.48, models/us-liver/MODEL_CARD.md); a blank
frame (black, or one flat grey level: no echoes) is refused, not answered "no focal lesion found".
"""

from __future__ import annotations

import numpy as np

from lesiondx.io import MedicalImage

from .checks import modality_check, photometric_check
from .verdict import Check, GateVerdict, combine

TASK = "us-liver"
MIN_COLS, MIN_ROWS = 440, 341  # px: the narrowest and the lowest AUL frame of the developer part
# blank frame: grey SD under 2 levels, or under 1 % of the pixels brighter than 10 (0..255); the AUL frames have
# SD >= 18.9 and >= 16.6 % of their pixels above 10 (a frame at a quarter of its gain: SD 8.4, 22 %)
BLANK_SD, ECHO_LEVEL, MIN_ECHO_SHARE = 2.0, 10.0, 0.01


def blank_reason(pixels: np.ndarray) -> str | None:
    """Why a grey frame holds no ultrasound image (black, or one flat level), or ``None``. Data wider than 8 bits
    is stretched min..max to 0..255 first."""
    grey = np.asarray(pixels, dtype=np.float32)
    low, high = float(grey.min()), float(grey.max())
    if high > 255 or low < 0:
        grey = (grey - low) * (255.0 / max(high - low, 1e-6))
    sd, share = float(grey.std()), float((grey > ECHO_LEVEL).mean())
    if sd < BLANK_SD or share < MIN_ECHO_SHARE:
        return (f"the frame is blank (grey SD {sd:.1f}, {share:.0%} of the pixels above {ECHO_LEVEL:.0f} of 255): "
                "no ultrasound image to assess")
    return None


def content_check(image: MedicalImage) -> Check:
    reason = blank_reason(image.pixels)
    return Check("content", "refused", None, reason) if reason else Check("content", "ok", None)


def size_check(image: MedicalImage) -> Check:
    rows, cols = image.pixels.shape[-2:]
    value = {"rows": int(rows), "cols": int(cols)}
    if cols < MIN_COLS or rows < MIN_ROWS:
        return Check("size", "flagged", value,
                     f"{cols}×{rows} px is smaller than every frame the model was trained on (at least "
                     f"{MIN_COLS}×{MIN_ROWS} px); downscaled or exported frames were not validated")
    return Check("size", "ok", value)


def gate(image: MedicalImage) -> GateVerdict:
    """The us-liver verdict for one frame read by :mod:`lesiondx.io`."""
    modality = modality_check(image, "US")
    if modality.status == "refused":
        return combine(TASK, [modality])
    checks = [modality, photometric_check(image, greyscale_model=True), size_check(image), content_check(image)]
    return combine(TASK, checks)
