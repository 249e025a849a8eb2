"""DICOM reading on real series: decoding, slice order, HU, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from lesiondx.io import ImageReadError, read_dicom, read_dicom_series, read_image, read_study


def _rows_by_patient(folder: Path) -> dict[str, list[dict[str, str]]]:
    with open(folder / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    grouped: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        grouped.setdefault(row["patient_id"], []).append(row)
    return grouped


def test_ctmd_series_decode_in_labels_order_with_physical_hu(ctmd_folder):
    for patient, rows in _rows_by_patient(ctmd_folder).items():
        files = [ctmd_folder / r["image"] for r in rows]
        volume = read_dicom_series(files)
        expected = [ctmd_folder / r["image"] for r in sorted(rows, key=lambda r: int(r["slice_index"]))]
        assert [p.resolve() for p in volume.sources] == [p.resolve() for p in expected], patient
        assert volume.is_hu and volume.modality == "CT"
        corners = np.concatenate([volume.pixels[:, :8, :8].ravel(), volume.pixels[:, -8:, -8:].ravel()])
        assert -1100 < np.median(corners) < -900, f"{patient}: corners should be air, got {np.median(corners)}"
        assert np.all(np.diff(volume.positions) < 0), "positions must fall from head to feet"
        assert volume.spacing is not None and 0.3 < volume.spacing[1] < 1.5


def test_ircadb_slices_and_masks_align(ircadb_folder):
    from lesiondx.io import read_raster_array

    for patient, rows in _rows_by_patient(ircadb_folder).items():
        volume = read_dicom_series([ircadb_folder / r["image"] for r in rows])
        by_index = {int(r["slice_index"]): r for r in rows}
        assert [p.resolve() for p in volume.sources] == [
            (ircadb_folder / by_index[i]["image"]).resolve() for i in range(len(rows))
        ]
        middle = len(rows) // 2
        liver = read_raster_array(ircadb_folder / by_index[middle]["liver_mask"]) > 0
        assert liver.shape == volume.pixels.shape[1:]
        if liver.sum() > 500:  # liver parenchyma is soft tissue, not air or bone
            assert 0 < np.median(volume.pixels[middle][liver]) < 250, patient


def test_pydicom_bundled_ct_and_compressed_files():
    ct = read_dicom(get_testdata_file("CT_small.dcm", download=False))
    assert ct.is_hu and ct.pixels.shape == (128, 128)
    raw = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    expected = raw.pixel_array * float(raw.RescaleSlope) + float(raw.RescaleIntercept)
    np.testing.assert_allclose(ct.pixels, expected)
    reference = read_dicom(get_testdata_file("MR_small.dcm", download=False)).pixels
    for name in ("MR_small_jp2klossless.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm"):
        np.testing.assert_array_equal(read_dicom(get_testdata_file(name, download=False)).pixels, reference, name)


def _write(ds: pydicom.Dataset, path: Path) -> Path:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def _image_ds(pixels: np.ndarray, **attrs) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", generate_uid()
    ds.Modality = attrs.pop("Modality", "OT")
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if pixels.ndim == 4 or attrs.get("SamplesPerPixel") == 3 else pixels.shape[-2:]
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.SamplesPerPixel = attrs.pop("SamplesPerPixel", 1)
    ds.PhotometricInterpretation = "RGB" if ds.SamplesPerPixel == 3 else "MONOCHROME2"
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    return ds


def test_us_rgb_becomes_grey_and_multiframe_is_a_volume(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # pure red → luma 0.299 * 200
    us = read_dicom(_write(_image_ds(rgb, Modality="US", SamplesPerPixel=3), tmp_path / "us.dcm"))
    assert us.pixels.shape == (4, 5) and us.modality == "US"
    np.testing.assert_allclose(us.pixels, 0.299 * 200, atol=0.01)
    frames = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    multi = read_dicom(_write(_image_ds(frames, NumberOfFrames=3), tmp_path / "mf.dcm"))
    assert multi.is_volume and multi.pixels.shape == (3, 4, 5)
    np.testing.assert_array_equal(multi.pixels, frames)


def test_series_falls_back_to_instance_number_without_positions(tmp_path):
    for number in (3, 1, 2):
        ds = _image_ds(np.full((4, 4), number * 10, np.uint8), InstanceNumber=number)
        _write(ds, tmp_path / f"slice_{4 - number}.dcm")
    volume = read_study(tmp_path)
    assert [float(v) for v in volume.pixels[:, 0, 0]] == [10.0, 20.0, 30.0]


def test_truncated_dicom_gives_clear_error(tmp_path, ctmd_folder):
    source = next((ctmd_folder / "series").rglob("*.dcm"))
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(ImageReadError) as info:
        read_image(truncated)
    assert info.value.path == truncated and "truncated" in info.value.reason
    header_only = tmp_path / "header.dcm"
    header_only.write_bytes(source.read_bytes()[:300])
    with pytest.raises(ImageReadError, match="header.dcm"):
        read_image(header_only)


def test_bundled_truncated_and_non_image_files(tmp_path):
    with pytest.raises(ImageReadError, match="MR_truncated.dcm"):
        read_image(get_testdata_file("MR_truncated.dcm", download=False))
    text = tmp_path / "notes.dcm"
    text.write_text("this is not an image\n" * 20)
    with pytest.raises(ImageReadError, match="notes.dcm: not a DICOM file"):
        read_image(text)
    empty = tmp_path / "empty.png"
    empty.touch()
    with pytest.raises(ImageReadError, match="empty"):
        read_image(empty)
    csv_file = tmp_path / "table.csv"
    csv_file.write_text("a,b\n1,2\n")
    with pytest.raises(ImageReadError, match="unsupported file type"):
        read_image(csv_file)


def test_series_with_empty_sop_instance_uid_still_reads(tmp_path, ctmd_folder):
    files = sorted((ctmd_folder / "series").rglob("*.dcm"))[:3]
    for index, source in enumerate(files):
        ds = pydicom.dcmread(source)
        ds.SOPInstanceUID = ""
        ds.save_as(tmp_path / f"{index}.dcm")
    assert read_study(tmp_path).n_slices == 3
