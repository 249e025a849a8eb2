"""Locations in patient terms: the same image-left lesion is in the patient's right lung on a standard axial
series and in the left lung when ImageOrientationPatient says the image is flipped; zones from the lungs'
cranio-caudal extent; a real CT-MD series gives sensible sides and zones."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from lesiondx.ct_covid import pipeline, task
from lesiondx.ct_covid.locations import location_text, lung_frame
from lesiondx.ct_covid.lung import lung_field
from lesiondx.io import apply_window, read_study
from lesiondx.io.anatomy import cranio_caudal_zone, orientation_of, patient_side, zone_phrase
from lesiondx_testdata import shared_dataset

FLIPPED = [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
N, SIZE, LUNG_SLICES, LESION_SLICES = 12, 128, range(1, 11), range(7, 10)


def _phantom_hu(i: int) -> np.ndarray:
    """SYNTHETIC chest slice: body ellipse, two lungs (slices 1–10), a dense lesion in the IMAGE-LEFT lung
    (slices 7–9, the lower third of the lungs)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    hu = np.full((SIZE, SIZE), -1000.0)
    hu[((yy - 64) / 48) ** 2 + ((xx - 64) / 60) ** 2 <= 1] = -100.0  # fat-like, so only the lesion is dense
    if i in LUNG_SLICES:
        for cx in (36, 92):
            hu[((yy - 62) / 30) ** 2 + ((xx - cx) / 17) ** 2 <= 1] = -850.0
    if i in LESION_SLICES:
        hu[(yy - 60) ** 2 + (xx - 34) ** 2 <= 7**2] = 300.0
    return hu


def _write_series(folder: Path, iop: list[float]) -> Path:
    folder.mkdir(parents=True)
    study, series = generate_uid(), generate_uid()
    for i in range(N):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SOPClassUID, ds.Modality = CTImageStorage, "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, i + 1
        ds.ImageOrientationPatient = iop
        ds.ImagePositionPatient = [-160.0, -160.0, -10.0 * i]
        ds.PixelSpacing, ds.SliceThickness = [2.5, 2.5], 10.0
        ds.Rows = ds.Columns = SIZE
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = (_phantom_hu(i) + 1024).astype(np.uint16).tobytes()
        ds.save_as(folder / f"{N - i:03d}.dcm", enforce_file_format=True)  # file names in reverse slice order
    return folder


@pytest.fixture
def dense_tissue_model(monkeypatch):
    """A TEST DOUBLE segmenter: 'lesion' = tissue denser than ~100 HU (lung-window grey > 230) in the lung field."""
    monkeypatch.setattr(pipeline, "predict_probs",
                        lambda module, grey, batch=8, fast=True: np.where(grey > 230, 0.95, 0.02).astype(np.float32))


@pytest.mark.parametrize("iop, side", [([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], "right"), (FLIPPED, "left")])
def test_the_same_image_left_lesion_changes_side_with_the_orientation(iop, side, tiny_run, dense_tissue_model,
                                                                     tmp_path):
    result = task.predict([_write_series(tmp_path / "series", iop)], str(tiny_run))
    assert result["patient"]["decision"] == 1
    assert result["patient"]["location"] == f"{side} lung, lower zone"
    assert result["patient"]["rule"]["image_quadrant"] == "upper-left"  # image metadata: the same either way
    boxes = [b for s in result["slices"] for b in s["boxes"]]
    assert boxes and {b["location"] for b in boxes} == {f"{side} lung, lower zone"}
    assert [s["slice"] for s in result["slices"] if s["boxes"]] == list(LESION_SLICES)
    assert "assumed" not in result["location_basis"]


def test_without_orientation_the_default_is_assumed_and_said():
    frame = orientation_of(None)
    assert frame.assumed and patient_side(0, -10, frame) == "right" and patient_side(0, 10, frame) == "left"
    assert patient_side(0, -10, orientation_of(FLIPPED)) == "left"
    assert patient_side(0, 0.5, frame, margin=1.0) is None
    sagittal = orientation_of([0, 1, 0, 0, 0, -1])  # columns run posterior: no left/right in plane
    assert not sagittal.is_axial


def test_zones_are_thirds_of_the_extent_and_follow_positions():
    assert [cranio_caudal_zone(i, (0, 8)) for i in (0, 3, 8)] == ["upper", "middle", "lower"]
    inferior_first = [-90.0 + 10 * i for i in range(10)]  # slice 0 is the most inferior here
    assert cranio_caudal_zone(0, (0, 9), inferior_first) == "lower"
    assert zone_phrase(["lower", "middle", "lower"]) == "middle to lower zone"
    assert location_text([None, "left", "left", "right"], [None]) == "left lung"
    assert location_text([], ["upper"]) == "lung, side not determined, upper zone"


def test_no_zone_when_the_lungs_run_out_of_the_series():
    hu = np.stack([_phantom_hu(i) for i in range(2, 9)])  # lungs on every slice: apex and base not seen
    lungs = np.stack([lung_field(apply_window(s, "lung"), 136.6) for s in hu])
    frame = lung_frame(lungs, (SIZE, SIZE))
    assert not frame.complete and frame.zone(3) is None and frame.side(60, 34) == "right"


def test_a_real_ct_md_series_has_sensible_sides_and_zones():
    """Shared CT-MD P002 (real, standard orientation): lungs start and end inside the series, the
    centre lies between the lungs, the image-left lung is the patient's right lung."""
    data = shared_dataset("covid_ct_md_sample")
    image = read_study(data / "series" / "P002")
    small = image.pixels[:, ::4, ::4]  # 128² is enough for the lung field
    lungs = np.stack([lung_field(apply_window(s, "lung"), 136.6) for s in small])
    frame = lung_frame(lungs, image.pixels.shape[1:], orientation=image.orientation, positions=image.positions,
                       spacing=image.spacing)
    assert not frame.orientation.assumed and frame.complete
    first, last = frame.extent
    assert frame.zone(first) == "upper" and frame.zone(last) == "lower"
    assert frame.zone((first + last) // 2) == "middle"
    middle = lungs[(first + last) // 2]
    cols = np.nonzero(middle.any(axis=0))[0] * 4
    assert 0.35 < frame.centre[1] / image.pixels.shape[2] < 0.65
    row = frame.centre[0]
    assert frame.side(row, cols.min() + 20) == "right" and frame.side(row, cols.max() - 20) == "left"


def test_the_bundled_mini_series_gives_patient_terms_without_zones(tiny_run, mini_folder, monkeypatch):
    monkeypatch.setattr(pipeline, "predict_probs",  # TEST DOUBLE: soft tissue (vessels, opacities) in the lungs
                        lambda module, grey, batch=8, fast=True: np.where(grey > 150, 0.95, 0.02).astype(np.float32))
    result = task.predict([mini_folder / "series" / "P002"], str(tiny_run))
    locations = {b["location"] for s in result["slices"] for b in s["boxes"]}
    assert locations and all(re.fullmatch(r"(left|right) lung|lung, side not determined", x) for x in locations)
    assert "no zones" in result["location_basis"]
