"""us-liver input gate: a greyscale B-mode ultrasound frame (DICOM Modality US, or a raster the modality
probe calls ultrasound), not a CT slice; colour (Doppler, colour maps) is flagged; a frame smaller than every
AUL frame the model was fitted on (the smallest: 440 px wide, 341 px high) is flagged: downscaled or exported
teaching frames were not validated (300×225 px ones gave AUC ≈ 0.48, models/us-liver/MODEL_CARD.md).
"""

from __future__ import annotations

from lesiondx.io import MedicalImage

from .checks import modality_check, photometric_check
from .verdict import Check, GateVerdict, combine

TASK = "us-liver"
MIN_COLS, MIN_ROWS = 440, 341  # px: the narrowest and the lowest AUL frame of the developer part


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
    return combine(TASK, [modality, photometric_check(image, greyscale_model=True), size_check(image)])
