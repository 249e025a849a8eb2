"""PS3.15 Basic Profile de-identification of DICOM, options, UID consistency, raster scrubbing, pseudonyms."""

from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from lesiondx.io import guess_phase
from lesiondx.io.deid import DeidOptions, date_shift_days, deidentify, pseudonym, remap_uid, scrub_raster
from lesiondx.io.deid.table import action_for, basic_profile
from lesiondx.service.ingest import pseudonyms
from phi_corpus import (ID_TEXT, MARK, OTHER_UIDS, OTHER_VALUES, TEXT_ATTRIBUTES, find_markers, phi_dataset, phi_jpeg,
                        phi_png, to_bytes)

ROOT = Path(__file__).resolve().parents[2]
CT = sorted((ROOT / "examples/covid_ct_md_mini/series/P002").glob("*.dcm"))
US = sorted((ROOT / "examples/aul_liver_us_mini/images").glob("*.jpg"))
SALT = "s" * 40
KEPT = ("Modality", "PixelSpacing", "SliceThickness", "ImageOrientationPatient", "ImagePositionPatient",
        "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth", "PhotometricInterpretation",
        "BodyPartExamined", "InstanceNumber", "Rows", "Columns", "BitsStored")


def _roundtrip(ds: pydicom.Dataset) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(to_bytes(ds)))


def test_table_is_the_standard_one_with_its_action_codes():
    exact, masked = basic_profile()
    assert len(exact) + len(masked) > 600  # Table E.1-1 lists ~650 attributes
    assert action_for(pydicom.tag.Tag("StudyDescription")) == "X"
    assert action_for(pydicom.tag.Tag("StudyInstanceUID")) == "U"
    assert action_for(pydicom.tag.Tag("PatientName")) == "Z"
    assert action_for(pydicom.tag.Tag(0x6002, 0x4000)) == "X"  # Overlay Comments, repeating group 60xx
    assert action_for(pydicom.tag.Tag("PixelSpacing")) is None


def test_the_corpus_marks_at_least_60_attributes_of_table_e1_1():
    keywords = TEXT_ATTRIBUTES + tuple(OTHER_VALUES) + OTHER_UIDS + tuple(ID_TEXT) + (
        "StudyInstanceUID", "SOPInstanceUID", "RequestAttributesSequence", "ReferencedPatientSequence",
        "OtherPatientIDsSequence", "SourceImageSequence")
    listed = [k for k in keywords if action_for(pydicom.tag.Tag(k)) is not None]
    assert len(listed) == len(keywords) >= 60


def test_phi_corpus_leaves_no_marker_and_keeps_what_the_models_read():
    original = pydicom.dcmread(CT[0])
    ds, markers = phi_dataset(CT[0])
    assert len(TEXT_ATTRIBUTES) + len(OTHER_VALUES) >= 60 and len(find_markers(to_bytes(ds))) > 5
    reference = str(ds.SourceImageSequence[0].ReferencedSOPInstanceUID)
    clean = _roundtrip(deidentify(ds, SALT))
    assert find_markers(to_bytes(clean)) == []
    assert clean.PatientIdentityRemoved == "YES"
    assert [(c.CodeValue, c.CodingSchemeDesignator) for c in clean.DeidentificationMethodCodeSequence] == [
        ("113100", "DCM")]
    assert clean.LongitudinalTemporalInformationModified == "REMOVED"
    assert not any(e.tag.is_private for e in clean.iterall())
    assert not any(0x5000 <= e.tag.group <= 0x60FF for e in clean)  # overlays and curves
    assert str(clean.PatientID).startswith("ANON-") and not clean.get("PatientSex")
    for keyword in KEPT:
        assert clean.get(keyword) == original.get(keyword), keyword
    assert clean.PixelData == original.PixelData
    # references are kept with remapped UIDs, consistent with the instance UIDs themselves
    assert clean.SourceImageSequence[0].ReferencedSOPInstanceUID == remap_uid(reference, SALT)
    assert "OperatorsName" not in clean.SourceImageSequence[0]
    assert clean.file_meta.MediaStorageSOPInstanceUID == clean.SOPInstanceUID
    assert "SourceApplicationEntityTitle" not in clean.file_meta
    assert clean.preamble in (None, b"\0" * 128)


def test_uids_are_remapped_consistently_across_files_and_calls():
    first, _ = phi_dataset(CT[0], 0)
    second, _ = phi_dataset(CT[1], 1)
    study = str(first.StudyInstanceUID)
    a, b = deidentify(first, SALT), deidentify(second, SALT)
    assert a.StudyInstanceUID == b.StudyInstanceUID == remap_uid(study, SALT)
    assert a.SeriesInstanceUID == b.SeriesInstanceUID and a.SOPInstanceUID != b.SOPInstanceUID
    assert a.PatientID == b.PatientID == pseudonym("IDMK001", SALT)
    other = deidentify(phi_dataset(CT[0])[0], "t" * 40)
    assert other.StudyInstanceUID != a.StudyInstanceUID


def test_date_options_full_shift_and_remove():
    full = deidentify(phi_dataset(CT[0])[0], SALT, options=DeidOptions(dates="full"))
    assert full.StudyDate == "19411207" and full.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert "PatientBirthDate" not in full or not full.PatientBirthDate  # never kept by the date options
    assert "113106" in [c.CodeValue for c in full.DeidentificationMethodCodeSequence]
    shifted = deidentify(phi_dataset(CT[0])[0], SALT, options=DeidOptions(dates="shift"))
    days = date_shift_days(pseudonym("IDMK001", SALT), SALT)
    assert 1 <= days <= 3650
    assert shifted.StudyDate == (date(1941, 12, 7) - timedelta(days=days)).strftime("%Y%m%d")
    assert shifted.AcquisitionDateTime.startswith((date(1973, 1, 29) - timedelta(days=days)).strftime("%Y%m%d"))
    assert "113107" in [c.CodeValue for c in shifted.DeidentificationMethodCodeSequence]
    removed = deidentify(phi_dataset(CT[0])[0], SALT)
    assert not removed.get("StudyDate") and "AcquisitionDate" not in removed
    with pytest.raises(ValueError, match="dates option"):
        DeidOptions(dates="keep")


def test_patient_characteristics_option_keeps_age_sex_size_weight_only():
    ds, _ = phi_dataset(CT[0])
    ds.PatientSex = "F"
    kept = deidentify(ds, SALT, options=DeidOptions(patient_characteristics=True))
    kept_values = (kept.PatientAge, kept.PatientSex, kept.PatientSize, kept.PatientWeight)
    assert kept_values == ("097Y", "F", 1.234567, 87.654321)
    assert "Allergies" not in kept and "113108" in [c.CodeValue for c in kept.DeidentificationMethodCodeSequence]
    default = deidentify(phi_dataset(CT[0])[0], SALT)
    assert "PatientAge" not in default and "PatientWeight" not in default and not default.get("PatientSex")


def test_contrast_phase_survives_as_a_keyword_only():
    ds, _ = phi_dataset(CT[0])
    ds.SeriesDescription = f"ARTERIAL PHASE {MARK}999 DOE"
    phase = guess_phase(ds)
    clean = deidentify(ds, SALT, phase=phase)
    assert phase == "arterial" and clean.SeriesDescription == "arterial" and guess_phase(clean) == "arterial"
    assert deidentify(phi_dataset(CT[0])[0], SALT, phase="DOE^JANE").get("SeriesDescription") is None


def test_ultrasound_region_geometry_is_kept():
    ds, _ = phi_dataset(CT[0])
    region = pydicom.Dataset()
    region.PhysicalDeltaX, region.PhysicalDeltaY, region.PhysicalUnitsXDirection = 0.01, 0.01, 3
    region.RegionLocationMinX0, region.RegionLocationMaxX1 = 10, 400
    ds.SequenceOfUltrasoundRegions = pydicom.Sequence([region])
    clean = deidentify(ds, SALT)
    assert clean.SequenceOfUltrasoundRegions[0].PhysicalDeltaX == 0.01
    assert clean.SequenceOfUltrasoundRegions[0].RegionLocationMaxX1 == 400


def test_missing_sop_instance_uid_gets_a_deterministic_one():
    ds = pydicom.dcmread(CT[0])
    ds.SOPInstanceUID = ""
    first = deidentify(ds, SALT).SOPInstanceUID
    again = pydicom.dcmread(CT[0])
    again.SOPInstanceUID = ""
    assert str(first).startswith("2.25.") and deidentify(again, SALT).SOPInstanceUID == first


@pytest.mark.parametrize("make", [phi_jpeg, phi_png])
def test_raster_keeps_pixels_and_drops_every_metadata(make):
    pixels = np.asarray(Image.open(US[0]).convert("RGB"))
    data = make(pixels)
    assert MARK.encode() in data
    with Image.open(io.BytesIO(data)) as image:
        decoded = np.asarray(image)
        clean = scrub_raster(image)
    assert MARK.encode() not in clean
    with Image.open(io.BytesIO(clean)) as stored:
        assert stored.format == "PNG" and not stored.info.get("exif") and "icc_profile" not in stored.info
        assert not {k for k in stored.info if k not in ("dpi",)}  # no text chunks
        assert np.array_equal(np.asarray(stored), decoded)  # lossless: the pixels the client's file decodes to


def test_raster_palette_and_16_bit_modes_are_stored_faithfully():
    palette = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).convert("P")
    with Image.open(io.BytesIO(scrub_raster(palette))) as stored:
        assert np.array_equal(np.asarray(stored.convert("RGB")), np.asarray(palette.convert("RGB")))
    deep = Image.fromarray((np.arange(1024, dtype=np.uint16) * 60).reshape(32, 32))
    with Image.open(io.BytesIO(scrub_raster(deep))) as stored:
        assert np.array_equal(np.asarray(stored).astype(np.int64), np.asarray(deep).astype(np.int64))


def test_pseudonyms_follow_natural_name_order_and_keep_only_a_common_suffix():
    names = ["DOE_JANE_10.jpg", "DOE_JANE_2.jpg", "DOE_JANE_1.jpg", "scan.PHIMK", "", "a/b/IM1.DCM"]
    out = pseudonyms(names)
    assert out == ["file-005.jpg", "file-004.jpg", "file-003.jpg", "file-006.bin", "file-001", "file-002.dcm"]
    assert not any("DOE" in p or "PHIMK" in p or "IM1" in p for p in out)


def test_issuer_sequences_and_source_instance_uids_do_not_survive():
    """Was: IssuerOfPatientIDQualifiersSequence / IssuerOfAccessionNumberSequence / order identifier sequences
    (the hospital's OID and name as issuer of the MRN and accession number) kept, and the instance UIDs
    Table E.1-1 does not list (MultiFrameSourceSOPInstanceUID of legacy-converted enhanced CT, the
    concatenation source, table / volume frames of reference) kept in clear: a link back to the original
    instances. Now the sequences are removed and those UIDs remapped like every other instance UID."""
    ds = pydicom.dcmread(CT[0])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    issuer = pydicom.Dataset()
    issuer.UniversalEntityID, issuer.UniversalEntityIDType, issuer.LocalNamespaceEntityID = (
        "1.2.3.4.HOSPITALOID", "ISO", "MARKERHOSPITAL")
    for keyword in ("IssuerOfPatientIDQualifiersSequence", "IssuerOfAccessionNumberSequence",
                    "OrderPlacerIdentifierSequence", "OrderFillerIdentifierSequence"):
        setattr(ds, keyword, [issuer])
    originals = {keyword: pydicom.uid.generate_uid() for keyword in (
        "MultiFrameSourceSOPInstanceUID", "SOPInstanceUIDOfConcatenationSource", "TableFrameOfReferenceUID",
        "VolumeFrameOfReferenceUID", "RadiopharmaceuticalAdministrationEventUID")}
    for keyword, uid in originals.items():
        setattr(ds, keyword, uid)
    ds.ReferencedImageSequence = [pydicom.Dataset()]
    ds.ReferencedImageSequence[0].MultiFrameSourceSOPInstanceUID = originals["MultiFrameSourceSOPInstanceUID"]
    ds.ReferencedImageSequence[0].ReferencedSOPClassUID = ds.SOPClassUID  # a well-known UID stays
    data = to_bytes(deidentify(ds, SALT))
    assert b"HOSPITAL" not in data
    assert not [k for k, uid in originals.items() if uid.encode() in data]
    out = pydicom.dcmread(io.BytesIO(data))
    assert out.MultiFrameSourceSOPInstanceUID == remap_uid(originals["MultiFrameSourceSOPInstanceUID"], SALT)
    assert out.ReferencedImageSequence[0].MultiFrameSourceSOPInstanceUID == out.MultiFrameSourceSOPInstanceUID
    assert out.ReferencedImageSequence[0].ReferencedSOPClassUID == ds.SOPClassUID
