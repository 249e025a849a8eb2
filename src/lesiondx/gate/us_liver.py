"""us-liver input gate: a greyscale B-mode ultrasound frame (DICOM Modality US, or a raster the modality
probe calls ultrasound), not a CT slice; colour (Doppler, colour maps) is flagged; a frame smaller than every
AUL frame the model was fitted on (the smallest: 440 px wide, 341 px high) is flagged: downscaled or exported
teaching frames were not validated (300×225 px ones gave AUC ≈ 0.48, models/us-liver/MODEL_CARD.md); a blank
frame (black, or one flat grey level: no echoes) is refused, not answered "no focal lesion found"; a frame whose
scan sector does not narrow towards the top (rotated by 90°, or upside down: transducer at the bottom) is flagged
(left-right mirroring is a legitimate display choice and passes); a file tagged US whose pixels the modality probe
does not read as ultrasound is refused or flagged as a raster would be.
"""

from __future__ import annotations

import numpy as np

from scipy import ndimage

from lesiondx.io import MedicalImage

from .checks import P_US_FLAG_US, P_US_REFUSE_US, modality_check, p_ultrasound_of, photometric_check
from .verdict import Check, GateVerdict, combine

TASK = "us-liver"
MIN_COLS, MIN_ROWS = 440, 341  # px: the narrowest and the lowest AUL frame of the developer part
# blank frame: grey SD under 2 levels, or under 1 % of the pixels brighter than 10 (0..255); the AUL frames have
# SD >= 18.9 and >= 16.6 % of their pixels above 10 (a frame at a quarter of its gain: SD 8.4, 22 %)
BLANK_SD, ECHO_LEVEL, MIN_ECHO_SHARE = 2.0, 10.0, 0.01


def _grey_255(pixels: np.ndarray) -> np.ndarray:
    """Grey float32; data wider than 8 bits stretched min..max to 0..255."""
    grey = np.asarray(pixels, dtype=np.float32)
    low, high = float(grey.min()), float(grey.max())
    return (grey - low) * (255.0 / max(high - low, 1e-6)) if high > 255 or low < 0 else grey


def blank_reason(pixels: np.ndarray) -> str | None:
    """Why a grey frame holds no ultrasound image (black, or one flat level), or ``None``. Data wider than 8 bits
    is stretched min..max to 0..255 first."""
    grey = _grey_255(pixels)
    sd, share = float(grey.std()), float((grey > ECHO_LEVEL).mean())
    if sd < BLANK_SD or share < MIN_ECHO_SHARE:
        return (f"the frame is blank (grey SD {sd:.1f}, {share:.0%} of the pixels above {ECHO_LEVEL:.0f} of 255): "
                "no ultrasound image to assess")
    return None


# orientation: the echo area (grey > 4 after a 5-px mean on a half-size copy, opened, largest part, holes filled);
# ``narrowing`` = ln(width at 75 % of its height / width at 25 %), the same across its columns. Measured on the 562
# AUL frames (all seen in training) and their synthetic rotations (2026-12-06, every 3rd frame): upright frames'
# top/bottom width ratio <= 0.98 (median 0.54), upside-down copies >= 1.02 (5th percentile 1.35); the sideways
# narrowing exceeds the vertical one by > 0.4 in 0.5 % of upright frames and 85 % of rotated copies (97 % by > 0)
UPSIDE_DOWN_RATIO, SIDEWAYS_MARGIN = 1.15, 0.4


def sector_narrowing(grey: np.ndarray) -> tuple[float, float] | None:
    """``(vertical, sideways)`` narrowing of the echo area (natural log of width ratios): vertical > 0 when it is
    narrower at the top than at the bottom (transducer at the top); sideways > 0 when narrower at the left than at
    the right (< 0: at the right). ``None`` when there is no echo area to measure."""
    small = ndimage.uniform_filter(np.asarray(grey, np.float32)[::2, ::2], 5)
    mask = ndimage.binary_opening(small > 4.0, iterations=2)
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    mask = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    sub = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = sub.shape
    if h < 8 or w < 8:
        return None
    widths, heights = sub.sum(1), sub.sum(0)
    vertical = float(np.log(max(widths[int(0.75 * h)], 1) / max(widths[int(0.25 * h)], 1)))
    sideways = float(np.log(max(heights[int(0.75 * w)], 1) / max(heights[int(0.25 * w)], 1)))
    return vertical, sideways


def orientation_check(image: MedicalImage) -> Check:
    """Flag a frame whose scan sector does not narrow towards the top: upside down (top wider than the bottom by
    more than :data:`UPSIDE_DOWN_RATIO`) or rotated (the sector narrows more sideways than downwards, by
    :data:`SIDEWAYS_MARGIN`, or at all on a portrait frame). A linear-probe rectangle narrows nowhere and passes.
    The reason names the side the sector narrows towards (where the transducer is)."""
    grey = _grey_255(image.pixels if image.pixels.ndim == 2 else image.pixels[0])
    measured = sector_narrowing(grey)
    if measured is None:
        return Check("orientation", "ok", None)
    vertical, sideways = measured
    value = {"top_to_bottom_width_ratio": round(float(np.exp(-vertical)), 3), "vertical_narrowing": round(vertical, 3),
             "sideways_narrowing": round(sideways, 3)}
    portrait = grey.shape[-2] > grey.shape[-1]
    upside_down = np.exp(-vertical) > UPSIDE_DOWN_RATIO
    rotated = abs(sideways) - vertical > SIDEWAYS_MARGIN or (portrait and abs(sideways) > vertical)
    if not (upside_down or rotated):
        return Check("orientation", "ok", value)
    side = max((-vertical, "bottom"), (sideways, "left"), (-sideways, "right"))[1]
    looks = "upside down" if side == "bottom" else "rotated by 90°"
    return Check("orientation", "flagged", value,
                 f"the scan sector narrows towards the {side} of the frame, not the top: the frame looks {looks}; the "
                 "model reads B-mode frames with the transducer at the top (left-right mirroring is fine): rotate it back")


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


def tagged_content_check(image: MedicalImage) -> Check:
    """A file whose DICOM Modality says US is judged by its pixels too (the raster modality probe, with the raster
    thresholds): a CT slice or an X-ray-like image in a file tagged US (a mis-tagged secondary capture) was scored
    as ultrasound, and the out-of-distribution score does not catch it (2026-12-06: three abdomen-window Lung-PET-CT-Dx
    slices wrapped in US DICOM scored 6.7-11.4 without an ROI and 8.2-8.8 with a central one, threshold 10.1:
    1 of 6 flagged; all refused here at P(ultrasound) = 0.00)."""
    p_us = round(p_ultrasound_of(image), 4)
    value = {"dicom_modality": "US", "inferred_p_ultrasound": p_us}
    if p_us < P_US_REFUSE_US:
        return Check("content_modality", "refused", value, f"the file is tagged US but its pixels do not look like a "
                     f"B-mode ultrasound frame (P(ultrasound) = {p_us:.2f}; they read as a CT slice or other image)")
    if p_us < P_US_FLAG_US:
        return Check("content_modality", "flagged", value, f"the file is tagged US but its pixels are not clearly a "
                     f"B-mode ultrasound frame (P(ultrasound) = {p_us:.2f})")
    return Check("content_modality", "ok", value)


def gate(image: MedicalImage) -> GateVerdict:
    """The us-liver verdict for one frame read by :mod:`lesiondx.io`."""
    modality = modality_check(image, "US")
    if modality.status == "refused":
        return combine(TASK, [modality])
    checks = [modality, photometric_check(image, greyscale_model=True), size_check(image), content_check(image)]
    if (image.modality or "").upper() == "US" and checks[-1].status == "ok":
        checks.append(tagged_content_check(image))
    if checks[-1].status == "ok":
        checks.append(orientation_check(image))
    return combine(TASK, checks)
