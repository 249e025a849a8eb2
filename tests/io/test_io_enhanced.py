"""Enhanced (multi-frame) CT: the 10 bundled CT-MD excerpt slices rewritten as one multi-frame file with rescale,
spacing, orientation and positions in the functional groups (altered copy, synthetic), frames inferior first."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from lesiondx.gate import check
from lesiondx.io import read_image, read_study

EXCERPT = Path(__file__).resolve().parents[2] / "examples" / "covid_ct_md_mini" / "series" / "P002"


def _item(**tags) -> Dataset:
    item = Dataset()
    for key, value in tags.items():
        setattr(item, key, value)
    return item


def _enhanced(path: Path) -> Path:
    slices = sorted((pydicom.dcmread(f) for f in EXCERPT.glob("*.dcm")), key=lambda d: float(d.ImagePositionPatient[2]))
    ds = copy.deepcopy(slices[0])  # frames inferior → superior, as a feet-first acquisition stores them
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT Image Storage
    frames = np.stack([d.pixel_array for d in slices])
    ds.NumberOfFrames = len(slices)
    ds.PixelData = frames.tobytes()
    shared = _item(PixelValueTransformationSequence=Sequence([_item(RescaleSlope=ds.RescaleSlope,
                                                                    RescaleIntercept=ds.RescaleIntercept)]),
                   PlaneOrientationSequence=Sequence([_item(ImageOrientationPatient=ds.ImageOrientationPatient)]),
                   PixelMeasuresSequence=Sequence([_item(PixelSpacing=ds.PixelSpacing, SliceThickness=ds.SliceThickness)]))
    for keyword in ("RescaleSlope", "RescaleIntercept", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        delattr(ds, keyword)
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence(
        [_item(PlanePositionSequence=Sequence([_item(ImagePositionPatient=d.ImagePositionPatient)])) for d in slices])
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


def test_an_enhanced_ct_file_reads_as_the_classic_series_does(tmp_path):
    classic = read_study(EXCERPT)
    enhanced = read_image(_enhanced(tmp_path / "series" / "enhanced.dcm"))
    # was: stored values without HU (rescale in the functional groups), no positions, frames in file order
    assert enhanced.is_hu and enhanced.positions == classic.positions and enhanced.spacing == classic.spacing
    np.testing.assert_array_equal(enhanced.pixels, classic.pixels)
    in_folder = read_study(tmp_path / "series")  # was: a (1, 10, 512, 512) stack, and a ValueError in the gate
    np.testing.assert_array_equal(in_folder.pixels, classic.pixels)
    assert check("ct-covid", in_folder).checks["geometry"]["value"]["slice_step_mm"] == 2.0
