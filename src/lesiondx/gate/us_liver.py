"""us-liver input gate: a greyscale B-mode ultrasound frame (DICOM Modality US, or a raster the modality
probe calls ultrasound), not a CT slice; colour (Doppler, colour maps) is flagged; an image much smaller
than the AUL frames the model was fitted on (440–1388 px wide) is flagged below 200 px on its shorter side.
"""

from __future__ import annotations

from lesiondx.io import MedicalImage

from .checks import modality_check, photometric_check
from .verdict import Check, GateVerdict, combine

TASK = "us-liver"
MIN_SIDE = 200  # px


def size_check(image: MedicalImage) -> Check:
    rows, cols = image.pixels.shape[-2:]
    value = {"rows": int(rows), "cols": int(cols)}
    if min(rows, cols) < MIN_SIDE:
        return Check("size", "flagged", value, f"{cols}×{rows} px is smaller than the frames the model was validated on")
    return Check("size", "ok", value)


def gate(image: MedicalImage) -> GateVerdict:
    """The us-liver verdict for one frame read by :mod:`lesiondx.io`."""
    modality = modality_check(image, "US")
    if modality.status == "refused":
        return combine(TASK, [modality])
    return combine(TASK, [modality, photometric_check(image, greyscale_model=True), size_check(image)])
