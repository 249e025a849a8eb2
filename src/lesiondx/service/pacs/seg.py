"""DICOM SEG (highdicom) of the lesion boxes of one input series, referencing the source instances."""

from __future__ import annotations

import warnings

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from .content import AI_MARK, BoxFinding
from .source import SourceSeries

MANUFACTURER = "lesiondx"
SEGMENT_LABEL = {"ct-covid": "COVID-19 lesion (box-filled)", "ct-liver": "liver lesion (box-filled)",
                 "us-liver": "focal liver lesion (box-filled)"}


def box_mask(series: SourceSeries, boxes: list[BoxFinding]) -> np.ndarray:
    """A boolean ``(images, rows, cols)`` mask with every box of ``series`` filled (clipped to the image)."""
    first = series.images[0]
    mask = np.zeros((len(series.images), int(first.Rows), int(first.Columns)), dtype=bool)
    for b in boxes:
        if b.series == series.name and 0 <= b.slice < len(series.images):
            x1, y1, x2, y2 = b.box
            mask[b.slice, max(0, y1):max(0, y2), max(0, x1):max(0, x2)] = True
    return mask


def algorithm(task: str, version: str) -> hd.AlgorithmIdentificationSequence:
    return hd.AlgorithmIdentificationSequence(name=f"lesiondx {task}", family=codes.cid7162.ArtificialIntelligence,
                                              version=version[:64] or "unknown")


def segmentation(series: SourceSeries, mask: np.ndarray, *, task: str, version: str, series_uid: str, sop_uid: str,
                 series_number: int, result_version: int) -> Dataset:
    """A binary SEG with one segment (the filled boxes) over ``series``' images; frames without a box are omitted."""
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label=SEGMENT_LABEL.get(task, "lesion (box-filled)"),
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm(task, version))
    images = list(series.images)
    pixels = mask if len(images) > 1 else mask[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg = hd.seg.Segmentation(
            source_images=images, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[description], series_instance_uid=series_uid, series_number=series_number,
            sop_instance_uid=sop_uid, instance_number=1, manufacturer=MANUFACTURER,
            manufacturer_model_name=f"lesiondx {task}", software_versions=version[:64] or "unknown",
            device_serial_number="none", content_label="LESIONDX_AI", content_description=AI_MARK[:64],
            content_creator_name="lesiondx^AI", transfer_syntax_uid=ExplicitVRLittleEndian, omit_empty_frames=True)
    seg.SeriesDescription = f"{AI_MARK} v{result_version} (lesion boxes)"[:64]
    return seg
