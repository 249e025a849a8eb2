"""The PACS export maps results to the very instances the task read: the same series, order and files as
:func:`lesiondx.io.dicom.series_files` (ALTERED copies of the bundled CT-MD excerpt: a reformat and a thin
reconstruction added to the folder, new series UIDs, nothing else changed)."""

from __future__ import annotations

import pydicom
import pytest

from lesiondx.io import read_study
from lesiondx.io.dicom import dicom_files_in
from lesiondx.service.pacs.source import input_images
from lesiondx_testdata import EXAMPLES

SERIES = EXAMPLES / "covid_ct_md_mini" / "series" / "P002"


def _copy(src, dst, series_uid: str, **changes) -> None:
    ds = pydicom.dcmread(src)
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = f"{series_uid}.{ds.InstanceNumber}"
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(dst)


@pytest.fixture
def export_folder(tmp_path):
    files = sorted(SERIES.glob("*.dcm"))
    if len(files) < 8:
        pytest.skip(f"{SERIES} missing")
    for f in files[:3]:  # the axial series: 3 slices
        _copy(f, tmp_path / f"AX_{f.name}", "1.2.826.0.1.3680043.9.1")
    for f in files[:5]:  # a coronal reformat with more images (the old export mapping took the largest series)
        _copy(f, tmp_path / f"COR_{f.name}", "1.2.826.0.1.3680043.9.2", ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    return tmp_path


@pytest.mark.parametrize("task", ["ct-covid", "ct-liver"])
def test_export_reads_the_series_the_task_read_not_the_largest(export_folder, task):
    read = [p.name for p in read_study(export_folder).sources]
    mapped = [f"{'AX' if ds.SeriesInstanceUID.endswith('.1') else 'COR'}" for ds in input_images(export_folder, task)]
    assert len(read) == 3 and all(name.startswith("AX_") for name in read)
    assert mapped == ["AX"] * 3
    by_uid = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p.name for p in dicom_files_in(export_folder)}
    assert [by_uid[ds.SOPInstanceUID] for ds in input_images(export_folder, task)] == read
