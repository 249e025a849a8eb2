"""Secondary Capture (highdicom.sc) of an overlay PNG in the original study, with SourceImageSequence."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from .content import AI_MARK, NOT_A_DIAGNOSIS

AXES = (("L", "R"), ("P", "A"), ("H", "F"))  # +x, +y, +z of the patient coordinate system, then their opposites


def _direction(vector: Sequence[float]) -> str:
    """Patient-orientation letters of a direction cosine vector, main axis first (e.g. ``L`` or ``LP``)."""
    order = np.argsort(-np.abs(np.asarray(vector, float)))
    letters = [AXES[i][0 if vector[i] > 0 else 1] for i in order if abs(vector[i]) > 0.25]
    return "".join(letters[:2]) or "L"


def patient_orientation(ref: Dataset) -> tuple[str, str] | None:
    """PatientOrientation of ``ref``: copied when present, else from ImageOrientationPatient; None when unknown."""
    value = ref.get("PatientOrientation")
    if value is not None and len(value) == 2 and all(str(v).strip() for v in value):
        return str(value[0]), str(value[1])
    iop = ref.get("ImageOrientationPatient")
    if iop is not None and len(iop) == 6:
        return _direction([float(v) for v in iop[:3]]), _direction([float(v) for v in iop[3:]])
    return None


def secondary_capture(ref: Dataset, sources: list[Dataset], overlay_png: Path, *, series_uid: str, sop_uid: str,
                      instance_number: int, series_number: int, result_version: int) -> Dataset:
    """An RGB SC of ``overlay_png`` in ``ref``'s (original) study, referencing ``sources`` in SourceImageSequence.

    The overlay is drawn on the source slice at its own pixel grid, so the slice's orientation holds
    (PatientOrientation copied from it, or derived from its ImageOrientationPatient; empty when unknown).
    """
    pixels = np.asarray(Image.open(overlay_png).convert("RGB"), dtype=np.uint8)
    orientation = patient_orientation(ref)
    with warnings.catch_warnings():  # original names need not follow the person-name pattern
        warnings.simplefilter("ignore")
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=ref, pixel_array=pixels, photometric_interpretation="RGB", bits_allocated=8,
            coordinate_system="PATIENT", patient_orientation=orientation or ("L", "P"),
            series_instance_uid=series_uid, series_number=series_number, sop_instance_uid=sop_uid,
            instance_number=instance_number, manufacturer="lesiondx", transfer_syntax_uid=ExplicitVRLittleEndian)
    if orientation is None:  # unknown (e.g. ultrasound): PatientOrientation is type 2, empty says so
        sc.PatientOrientation = ""
    items = []
    for source in sources:
        item = Dataset()
        item.ReferencedSOPClassUID = source.SOPClassUID
        item.ReferencedSOPInstanceUID = source.SOPInstanceUID
        items.append(item)
    sc.SourceImageSequence = items
    sc.SeriesDescription = f"{AI_MARK} v{result_version} (overlays)"[:64]
    sc.ImageComments = NOT_A_DIAGNOSIS
    sc.DerivationDescription = NOT_A_DIAGNOSIS
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.BurnedInAnnotation = "YES"
    return sc
