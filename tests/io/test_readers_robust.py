"""Readers on inputs as people hand them over: pixel bombs refused from the header, non-DICOM files in
DICOM folders skipped and listed, folders that cannot be one series refused or warned about."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from lesiondx.io import ImageReadError, read_image, read_raster_array, read_study


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims ``width`` × ``height`` pixels (its data is truncated)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [20000, 60000])
def test_huge_png_header_is_refused_before_decoding(tmp_path: Path, side: int):
    path = tmp_path / f"bomb_{side}.png"
    _png_header_only(path, side, side)
    with pytest.raises(ImageReadError, match="than the limit of"):
        read_raster_array(path)
    with pytest.raises(ImageReadError, match=f"bomb_{side}.png"):
        read_image(path)


def test_pixel_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "small.png"
    Image.fromarray(np.zeros((100, 120), np.uint8)).save(path)
    assert read_raster_array(path).shape == (100, 120)
    monkeypatch.setenv("LESIONDX_MAX_PIXELS", "10000")
    with pytest.raises(ImageReadError, match="LESIONDX_MAX_PIXELS"):
        read_raster_array(path)


def _ct_slice(path: Path, z: float, *, series: str, size: int = 32, orientation=(1, 0, 0, 0, 1, 0), value: int = 1000) -> None:
    """A synthetic CT slice (labelled synthetic) at table position ``z`` mm."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID, ds.file_meta.MediaStorageSOPClassUID = ExplicitVRLittleEndian, CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.Modality, ds.SeriesInstanceUID = CTImageStorage, "CT", series
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelSpacing = [0.7, 0.7]
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, z], list(orientation)
    ds.PixelData = np.full((size, size), value, np.int16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_non_dicom_files_in_a_dicom_folder_are_skipped_and_listed(tmp_path: Path):
    series = generate_uid()
    for i in range(3):
        _ct_slice(tmp_path / f"IM{i}", -2.0 * i, series=series)  # no suffix, like many PACS exports
    (tmp_path / "LICENSE").write_text("Creative Commons Attribution 4.0\n")
    (tmp_path / "README").write_text("series notes\n")
    volume = read_study(tmp_path)
    assert volume.n_slices == 3
    assert len(volume.warnings) == 1 and "LICENSE" in volume.warnings[0] and "README" in volume.warnings[0]


def test_a_corrupt_dicom_file_still_fails_the_series(tmp_path: Path):
    series = generate_uid()
    for i in range(2):
        _ct_slice(tmp_path / f"s{i}.dcm", -2.0 * i, series=series)
    (tmp_path / "s2.dcm").write_bytes((tmp_path / "s0.dcm").read_bytes()[:400])
    with pytest.raises(ImageReadError, match="s2.dcm"):
        read_study(tmp_path)


def test_several_series_are_read_as_the_largest_with_a_warning(tmp_path: Path):
    a, b = generate_uid(), generate_uid()
    for i in range(4):
        _ct_slice(tmp_path / f"a{i}.dcm", -2.0 * i, series=a)
    for i in range(2):
        _ct_slice(tmp_path / f"b{i}.dcm", -2.0 * i, series=b)
    volume = read_study(tmp_path)
    assert volume.n_slices == 4 and volume.metadata["SeriesInstanceUID"] == a
    assert any("2 series" in w for w in volume.warnings)


def test_slices_that_cannot_be_one_series_are_refused(tmp_path: Path):
    sizes, orientation = tmp_path / "sizes", tmp_path / "orientation"
    sizes.mkdir(), orientation.mkdir()
    series = generate_uid()
    _ct_slice(sizes / "a.dcm", 0.0, series=series)
    _ct_slice(sizes / "b.dcm", -2.0, series=series, size=48)
    with pytest.raises(ImageReadError, match="different sizes"):
        read_study(sizes)
    _ct_slice(orientation / "a.dcm", 0.0, series=series)
    _ct_slice(orientation / "b.dcm", -2.0, series=series, orientation=(0, 1, 0, 0, 0, -1))
    with pytest.raises(ImageReadError, match="different orientations"):
        read_study(orientation)
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(pngs / "1.png")
    Image.fromarray(np.zeros((30, 20), np.uint8)).save(pngs / "2.png")
    with pytest.raises(ImageReadError, match="different sizes"):
        read_study(pngs)


def test_repeated_positions_are_warned_about(tmp_path: Path):
    series = generate_uid()
    for i, z in enumerate((0.0, -2.0, -2.0, -4.0)):  # two different images at -2 mm (a copy of one is dropped)
        _ct_slice(tmp_path / f"s{i}.dcm", z, series=series, value=1000 + i)
    assert any("repeat" in w for w in read_study(tmp_path).warnings)


def test_series_pixel_limit_is_for_the_whole_series_and_the_image_limit_for_each_image(tmp_path: Path, monkeypatch):
    """LESIONDX_MAX_PIXELS is the largest image; a series is held to LESIONDX_MAX_SERIES_PIXELS (was: a whole series
    to the one-image limit, so a 1 mm chest CT of 300 slices of 512² = 79 Mpx was refused at the default 50 Mpx)."""
    series = generate_uid()
    for i in range(5):
        _ct_slice(tmp_path / f"s{i}.dcm", -2.0 * i, series=series, value=1000 + i)  # 5 × 32² = 5,120 px
    monkeypatch.setenv("LESIONDX_MAX_PIXELS", "2000")  # each image (1,024 px) fits, the series would not
    assert read_study(tmp_path).n_slices == 5
    monkeypatch.setenv("LESIONDX_MAX_SERIES_PIXELS", "4000")
    with pytest.raises(ImageReadError, match="LESIONDX_MAX_SERIES_PIXELS"):
        read_study(tmp_path)
    monkeypatch.setenv("LESIONDX_MAX_PIXELS", "1000")  # one image over the per-image limit
    with pytest.raises(ImageReadError, match="LESIONDX_MAX_PIXELS"):
        read_study(tmp_path)
