"""What a PACS / CD export folder holds beside the axial stack: real CT-MD slices (P002) with altered copies
(synthetic: a dose report, scouts, a coronal reformat, a second reconstruction, a DICOMDIR layout) written to tmp."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from lesiondx.io import ImageReadError, read_image, read_study
from lesiondx.io.series import pick_series, plane


def _slices(ctmd_folder: Path, n: int) -> list[pydicom.Dataset]:
    files = sorted((ctmd_folder / "series" / "P002").glob("*.dcm"))[:n]
    return [pydicom.dcmread(f) for f in files]


def _stack(ctmd_folder: Path, folder: Path, n: int = 4, prefix: str = "IM", suffix: str = ".dcm") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ds in enumerate(_slices(ctmd_folder, n)):
        paths.append(folder / f"{prefix}{i:04d}{suffix}")
        ds.save_as(paths[-1])
    return paths


def _dose_report(path: Path) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"  # X-Ray Radiation Dose SR
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality, ds.SeriesInstanceUID, ds.PatientID = "SR", generate_uid(), "P002"
    ds.save_as(path, enforce_file_format=True)
    return path


def _scout(ctmd_folder: Path, path: Path, *, same_series: bool) -> Path:
    ds = _slices(ctmd_folder, 1)[0]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # a coronal projection
    if not same_series:
        ds.SeriesInstanceUID, ds.SeriesDescription, ds.SeriesNumber = generate_uid(), "Topogram 0.6 T20f", 1
    ds.save_as(path)
    return path


def test_dose_report_beside_the_series_is_skipped_and_named(tmp_path, ctmd_folder):
    _stack(ctmd_folder, tmp_path)
    _dose_report(tmp_path / "IM9999.dcm")
    _dose_report(tmp_path / "DOSE")  # no suffix, as many exports name files
    image = read_study(tmp_path)
    assert image.n_slices == 4
    assert any("IM9999.dcm" in w and "DOSE" in w and "SR" in w for w in image.warnings), image.warnings
    with pytest.raises(ImageReadError, match="IM9999.dcm: a DICOM SR object with no pixel data"):
        read_image(tmp_path / "IM9999.dcm")  # asked for on its own it is still an error


def test_scouts_in_and_beside_the_series_are_skipped(tmp_path, ctmd_folder):
    _stack(ctmd_folder, tmp_path)
    _scout(ctmd_folder, tmp_path / "SCOUT_IN.dcm", same_series=True)  # was: "2 different orientations: not one stack"
    _scout(ctmd_folder, tmp_path / "SCOUT_OWN.dcm", same_series=False)
    image = read_study(tmp_path)
    assert image.n_slices == 4 and plane(pydicom.dcmread(image.sources[0], stop_before_pixels=True)) == "axial"
    assert any("1 localizer image(s) inside" in w for w in image.warnings), image.warnings
    assert any("'Topogram 0.6 T20f'" in w and "localizer" in w for w in image.warnings), image.warnings


def test_axial_series_is_read_before_a_larger_coronal_reformat(tmp_path, ctmd_folder):
    _stack(ctmd_folder, tmp_path, n=3)
    thick_uid, coronal_uid = generate_uid(), generate_uid()
    for i, ds in enumerate(_slices(ctmd_folder, 6)):  # a reformat with more images than the axial stack
        ds.SeriesInstanceUID, ds.SeriesDescription, ds.SeriesNumber = coronal_uid, "COR 3mm", 5
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.ImagePositionPatient = [-160.0, -300.0 + 3 * i, 0.0]
        ds.save_as(tmp_path / f"COR{i:04d}.dcm")
    for i, ds in enumerate(_slices(ctmd_folder, 2)):  # a second, thicker reconstruction of the same acquisition
        ds.SeriesInstanceUID, ds.SeriesDescription, ds.SeriesNumber, ds.SliceThickness = thick_uid, "Thorax 5mm", 3, 5
        ds.save_as(tmp_path / f"THK{i:04d}.dcm")
    image = read_study(tmp_path)
    assert image.n_slices == 3 and all(p.name.startswith("IM") for p in image.sources)
    text = " | ".join(image.warnings)
    assert "the axial series with the most images of 3 series" in text, text
    assert "'COR 3mm' (6 images, 2 mm, kernel D40s): coronal images (a reformat)" in text, text
    assert "series 3 'Thorax 5mm' (2 images, 5 mm, kernel D40s): fewer images" in text, text


def test_pacs_export_layout_with_dicomdir_is_read_through_subfolders(tmp_path, ctmd_folder):
    _stack(ctmd_folder, tmp_path / "DICOM" / "ST000000" / "SE000001", prefix="IM", suffix="")
    dicomdir = Dataset()
    dicomdir.file_meta = FileMetaDataset()
    dicomdir.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dicomdir.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"  # Media Storage Directory
    dicomdir.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dicomdir.FileSetID, dicomdir.DirectoryRecordSequence = "EXPORT", []
    dicomdir.save_as(tmp_path / "DICOMDIR", enforce_file_format=True)
    for folder in (tmp_path, tmp_path / "DICOM"):  # was: "DICOMDIR: not a DICOM file" / "holds neither DICOM ..."
        image = read_image(folder)
        assert image.n_slices == 4 and any("subfolders" in w for w in image.warnings), image.warnings


def test_files_of_two_patients_are_refused(tmp_path, ctmd_folder):
    paths = _stack(ctmd_folder, tmp_path, n=3)
    other = pydicom.dcmread(paths[0])
    other.PatientID, other.SeriesInstanceUID = "SOMEONE_ELSE", generate_uid()
    other.save_as(tmp_path / "OTHER.dcm")
    with pytest.raises(ImageReadError, match="2 patients"):
        read_study(tmp_path)


def test_pick_series_reads_scouts_only_when_nothing_else(ctmd_folder):
    scout = _slices(ctmd_folder, 1)[0]
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    assert pick_series([scout]).indices == (0,)


def test_a_file_exported_twice_is_read_once(tmp_path, ctmd_folder):
    """A slice counted twice would let the patient rule's k consecutive slices be made of fewer real ones."""
    paths = _stack(ctmd_folder, tmp_path)
    for path in paths[1:3]:
        (tmp_path / f"{path.stem} (1){path.suffix}").write_bytes(path.read_bytes())  # a download repeated
    image = read_study(tmp_path)
    assert image.n_slices == 4, image.warnings  # was 6 with "2 slice position(s) repeat"
    assert any("dropped 2 duplicate file(s)" in w for w in image.warnings), image.warnings
    assert not any("repeat" in w for w in image.warnings)


def test_a_zipped_export_gets_a_reason_a_user_can_act_on(tmp_path, ctmd_folder):
    import zipfile

    paths = _stack(ctmd_folder, tmp_path / "export", n=2)
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in paths:
            handle.write(path, path.name)
    with pytest.raises(ImageReadError, match="export.zip: an archive .*unpack it and give the series folder"):
        read_image(archive)  # was: "unsupported file type '.zip' (expected DICOM, NIfTI, PNG or JPG)"


def test_series_order_on_headers_alone_names_the_files_the_reader_reads(tmp_path, ctmd_folder):
    """For code that maps results back to instances from headers read without pixels (the service's DICOM output)."""
    from lesiondx.io.dicom import dicom_files_in, series_order

    _stack(ctmd_folder, tmp_path, n=3)
    _scout(ctmd_folder, tmp_path / "SCOUT_IN.dcm", same_series=True)
    _scout(ctmd_folder, tmp_path / "SCOUT_OWN.dcm", same_series=False)
    for i, ds in enumerate(_slices(ctmd_folder, 5)):
        ds.SeriesInstanceUID, ds.ImageOrientationPatient = "1.2.3.4", [1, 0, 0, 0, 0, -1]
        ds.save_as(tmp_path / f"COR{i:04d}.dcm")
    files = dicom_files_in(tmp_path)
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    order, notes, copies = series_order(headers)
    assert [files[i] for i in order] == list(read_study(tmp_path).sources) and not copies
    assert any("coronal" in n for n in notes)


def test_a_dose_report_in_a_subfolder_of_an_export_is_named_by_its_path(tmp_path, ctmd_folder):
    _stack(ctmd_folder, tmp_path / "DICOM" / "SE1", suffix="")
    (tmp_path / "DICOM" / "SE9").mkdir()
    _dose_report(tmp_path / "DICOM" / "SE9" / "IM0")
    image = read_study(tmp_path)
    assert image.n_slices == 4
    assert any("DICOM/SE9/IM0 (a DICOM SR object with no pixel data: a report" in w for w in image.warnings), image.warnings


def test_a_huge_tree_under_a_folder_is_refused_without_walking_all_of_it(tmp_path, monkeypatch):
    from lesiondx.io import dicom

    monkeypatch.setattr(dicom, "MAX_NESTED_FILES", 5)
    for i in range(3):
        (tmp_path / f"sub{i}").mkdir()
        for k in range(4):
            (tmp_path / f"sub{i}" / f"f{k}.txt").write_text("x")
    seen: list[Path] = []
    walk = Path.rglob
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: (seen.append(p) or p for p in walk(self, pattern)))
    with pytest.raises(ImageReadError, match="more than 5 files in its subfolders"):
        read_study(tmp_path)
    assert len(seen) < 15  # was: the whole tree listed and sorted before the cap was looked at
