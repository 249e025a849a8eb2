"""NIfTI through nibabel gives the orientation SimpleITK's DICOM (LPS) reading gave, for any stored direction."""

from __future__ import annotations

import numpy as np
import pytest

from lesiondx.io import read_nifti

sitk = pytest.importorskip("SimpleITK", reason="SimpleITK writes the reference files (test extras)")


@pytest.mark.parametrize("direction", [
    (1, 0, 0, 0, 1, 0, 0, 0, 1),      # identity (LPS)
    (-1, 0, 0, 0, -1, 0, 0, 0, 1),    # RAS-stored, as many NIfTI writers do
    (0, 1, 0, 1, 0, 0, 0, 0, -1),     # rows and columns swapped, slices stored foot first
])
def test_nibabel_reader_matches_simpleitk_lps_orientation(tmp_path, direction):
    array = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetDirection(direction)
    sitk.WriteImage(image, str(tmp_path / "v.nii.gz"))
    reference = sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(tmp_path / "v.nii.gz")), "LPS"))[::-1]
    volume = read_nifti(tmp_path / "v.nii.gz")
    np.testing.assert_array_equal(volume.pixels, reference.astype(np.float32))
    spacing = sitk.DICOMOrient(sitk.ReadImage(str(tmp_path / "v.nii.gz")), "LPS").GetSpacing()
    assert volume.spacing == pytest.approx(tuple(reversed(spacing)))


def test_a_broken_nifti_is_a_clear_error(tmp_path):
    from lesiondx.io import ImageReadError

    (tmp_path / "bad.nii").write_bytes(b"not a nifti file at all" * 20)
    with pytest.raises(ImageReadError, match="bad.nii"):
        read_nifti(tmp_path / "bad.nii")
