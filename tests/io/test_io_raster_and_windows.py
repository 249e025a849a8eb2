"""Raster images, slice folders, NIfTI, windows, resampling and de-identification."""

from __future__ import annotations


import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from lesiondx.io import (
    ImageReadError, apply_window, deidentify, natural_key, read_image, read_nifti, read_slice_folder, read_study,
    resample, remap_uid,
)


def test_png_8_and_16_bit_keep_their_values(tmp_path):
    sixteen = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    Image.fromarray(sixteen).save(tmp_path / "a16.png")
    image = read_image(tmp_path / "a16.png")
    np.testing.assert_array_equal(image.pixels, sixteen.astype(np.float32))
    eight = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(eight).save(tmp_path / "a8.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a8.png").pixels, eight)


def test_slice_folder_uses_natural_order(tmp_path):
    for number in (10, 2, 1):
        Image.fromarray(np.full((4, 4), number, np.uint8)).save(tmp_path / f"{number}.jpg", quality=100)
    volume = read_study(tmp_path)
    assert [p.name for p in volume.sources] == ["1.jpg", "2.jpg", "10.jpg"]
    assert sorted(["10.jpg", "2.jpg", "1.jpg"], key=natural_key) == ["1.jpg", "2.jpg", "10.jpg"]
    np.testing.assert_allclose(volume.pixels[:, 0, 0], [1, 2, 10], atol=1)


def test_slice_folder_with_mixed_sizes_is_an_error(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "1.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "2.png")
    with pytest.raises(ImageReadError, match="different sizes"):
        read_slice_folder(tmp_path)


def test_corrupt_jpeg_names_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 10)
    with pytest.raises(ImageReadError, match="broken.jpg"):
        read_image(bad)


def test_nifti_roundtrip_spacing_and_superior_first(tmp_path):
    import SimpleITK as sitk

    array = np.zeros((3, 4, 5), np.int16)
    for z in range(3):
        array[z] = z  # ITK z index grows towards the head with an identity direction (LPS)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.8, 2.5))
    sitk.WriteImage(image, str(tmp_path / "v.nii.gz"))
    volume = read_nifti(tmp_path / "v.nii.gz")
    assert volume.pixels.shape == (3, 4, 5)
    assert volume.spacing == pytest.approx((2.5, 0.8, 0.7))
    assert list(volume.pixels[:, 0, 0]) == [2, 1, 0]


def test_windows_map_hu_to_grey():
    hu = np.array([-2000, -1350, -600, 150, 3000], np.float32)
    np.testing.assert_allclose(apply_window(hu, "lung"), [0, 0, 127.5, 255, 255])
    np.testing.assert_allclose(apply_window(np.array([40.0]), "abdomen"), [127.5])
    with pytest.raises(ValueError, match="unknown window"):
        apply_window(hu, "brain-ish")
    # "center,width" text, as typed on a command line
    np.testing.assert_allclose(apply_window(np.array([-135.0, 40.0, 215.0]), "40,350"), [0, 127.5, 255])
    for bad in ("40;350", "40,", "40,0", "40,-350"):
        with pytest.raises(ValueError, match="window"):
            apply_window(hu, bad)


def test_resample_changes_shape_by_spacing():
    from lesiondx.io import MedicalImage

    image = MedicalImage(pixels=np.ones((10, 20), np.float32), spacing=(1.0, 0.5))
    out = resample(image, (2.0, 2.0))
    assert out.pixels.shape == (5, 5) and out.spacing == (2.0, 2.0)


def test_deidentify_removes_phi_and_remaps_uids_consistently():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "MRN-123", "19700101"
    ds.InstitutionName, ds.ReferringPhysicianName = "General Hospital", "Who^Dr"
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    pixels = ds.pixel_array.copy()
    clean = deidentify(ds, salt="s3cret")
    text = str(clean)
    for phi in ("Doe^Jane", "MRN-123", "19700101", "General Hospital", "Who^Dr"):
        assert phi not in text
    assert clean.StudyInstanceUID == remap_uid(study, "s3cret") != study
    assert clean.SeriesInstanceUID != series and clean.SOPInstanceUID != sop
    assert clean.file_meta.MediaStorageSOPInstanceUID == clean.SOPInstanceUID
    assert clean.PatientIdentityRemoved == "YES" and clean.PatientID.startswith("ANON-")
    np.testing.assert_array_equal(clean.pixel_array, pixels)
    again = deidentify(pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False)), salt="s3cret")
    assert again.StudyInstanceUID == clean.StudyInstanceUID
    other = deidentify(pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False)), salt="other")
    assert other.StudyInstanceUID != clean.StudyInstanceUID


def test_deidentify_assigns_missing_sop_instance_uid():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    ds.SOPInstanceUID = ""
    clean = deidentify(ds, salt="x")
    assert str(clean.SOPInstanceUID).startswith("2.25.") and len(str(clean.SOPInstanceUID)) <= 64


def test_colour_fraction_counts_pixels_by_their_own_channel_spread():
    from lesiondx.io.raster import colour_fraction

    rgb = np.zeros((2, 3, 3), dtype=np.float32)
    rgb[0, 0] = (200, 10, 10)  # red: spread 190
    rgb[0, 1] = (10, 10, 200)  # blue: spread 190 (the largest channel is the last one)
    rgb[1, 2] = (100, 120, 125)  # near-grey: spread 25 < 30
    assert colour_fraction(rgb) == pytest.approx(2 / 6)
    assert colour_fraction(np.stack([rgb, np.zeros_like(rgb)])) == pytest.approx(2 / 12)  # frames of a cine loop
    assert colour_fraction(np.full((4, 4), 200.0)) == 0.0
    noisy = np.random.default_rng(0).uniform(0, 255, (64, 48, 3)).astype(np.float32)
    spread = noisy.max(axis=-1) - noisy.min(axis=-1)
    assert colour_fraction(noisy) == pytest.approx(float((spread > 30).mean()))
