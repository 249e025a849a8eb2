"""A PHI corpus made at test time: DICOM with identifying data in every usual place, PNG/JPG with
metadata, file names with markers. Every value holds a marker the tests search for in bytes.

Two marker families:

* ``PHIMK``: attributes that must vanish everywhere (stored files, database, logs, API answers);
* ``IDMK`` (plus :data:`ID_UID_MARK` in UIDs): PatientID, PatientName, AccessionNumber and
  StudyInstanceUID, which a PACS mapping table in the database may legitimately hold (results go
  back under the original study); they must vanish from stored files, logs and API answers.

The attribute list was written from PS3.15 Table E.1-1 by hand (not read from the table the code
uses), so a gap in that table shows up here.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
from PIL import Image, PngImagePlugin
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

MARK = "PHIMK"
ID_MARK = "IDMK"
UID_MARK = "1.2.826.0.1.3680043.10.999.7777"  # other UIDs: must vanish everywhere
ID_UID_MARK = "1.2.826.0.1.3680043.10.999.4242"  # StudyInstanceUID: may sit in the mapping table only

# Text attributes of Table E.1-1 (keyword per line), each set to "PHIMK<nnn>" (PN: "PHIMK<nnn>^DOE").
TEXT_ATTRIBUTES = (
    "IssuerOfPatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
    "PatientAddress", "PatientTelephoneNumbers", "MilitaryRank", "BranchOfService", "EthnicGroup", "Occupation",
    "AdditionalPatientHistory", "PatientComments", "MedicalRecordLocator", "CountryOfResidence",
    "RegionOfResidence", "CurrentPatientLocation", "PatientInstitutionResidence", "PatientReligiousPreference",
    "ResponsiblePerson", "ResponsibleOrganization", "Allergies", "MedicalAlerts", "SpecialNeeds", "PatientState",
    "AdmittingDiagnosesDescription", "AdmissionID", "ReferringPhysicianName", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "ConsultingPhysicianName", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord", "RequestingPhysician", "OperatorsName",
    "ScheduledPerformingPhysicianName", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "StationName", "DeviceSerialNumber", "StudyID", "StudyDescription", "SeriesDescription", "ProtocolName",
    "RequestedProcedureDescription", "PerformedProcedureStepDescription", "PerformedProcedureStepID",
    "RequestedProcedureID", "ImageComments", "AcquisitionComments", "DerivationDescription",
    "RequestedContrastAgent", "ContrastBolusAgent", "DetectorID", "GantryID", "ServiceEpisodeDescription",
    "VisitComments", "FillerOrderNumberImagingServiceRequest", "PlacerOrderNumberImagingServiceRequest",
    "OrderEnteredBy", "OrderEntererLocation", "OrderCallbackPhoneNumber", "ReasonForTheRequestedProcedure",
    "DischargeDiagnosisDescription", "ContentCreatorName", "TextComments", "IdentifyingComments",
    "PerformedLocation", "ScheduledStudyLocation", "ReferringPhysicianIdentificationSequence",
)
# Dates / times / numbers of Table E.1-1 with values that occur nowhere else.
OTHER_VALUES = {
    "PatientBirthDate": "19371123", "StudyDate": "19411207", "SeriesDate": "19530305", "AcquisitionDate": "19450508",
    "ContentDate": "19610412", "InstanceCreationDate": "19690720", "StudyTime": "235959.987654",
    "SeriesTime": "225858.876543", "AcquisitionDateTime": "19730129101112", "PatientAge": "097Y",
    "PatientSize": "1.234567", "PatientWeight": "87.654321",
}
OTHER_UIDS = ("SeriesInstanceUID", "FrameOfReferenceUID", "IrradiationEventUID")
ID_TEXT = {"PatientID": f"{ID_MARK}001", "PatientName": f"{ID_MARK}002^DOE", "AccessionNumber": f"{ID_MARK}003"}
PRIVATE_CREATOR = f"{MARK} CREATOR"


class Markers:
    """Hands out numbered markers and remembers them."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def text(self, vr: str = "LO") -> str:
        value = f"{MARK}{len(self.values):03d}"
        self.values.append(value)
        return f"{value}^DOE" if vr == "PN" else value

    def uid(self) -> str:
        value = f"{UID_MARK}.{len(self.values)}"
        self.values.append(value)
        return value


def _code_item(markers: Markers) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = markers.text("SH"), "99LOCAL", markers.text()
    return item


def _sequences(ds: Dataset, markers: Markers) -> None:
    """Sequences of Table E.1-1 (and one that is not in it) holding identifying values."""
    request = Dataset()
    request.RequestedProcedureID = markers.text("SH")
    request.ScheduledProcedureStepID = markers.text("SH")
    request.RequestedProcedureDescription = markers.text()
    ds.RequestAttributesSequence = Sequence([request])
    patient_ref = Dataset()
    patient_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.1.1"
    patient_ref.ReferencedSOPInstanceUID = markers.uid()
    ds.ReferencedPatientSequence = Sequence([patient_ref])
    other_id = Dataset()
    other_id.PatientID, other_id.IssuerOfPatientID = markers.text(), markers.text()
    ds.OtherPatientIDsSequence = Sequence([other_id])
    ds.ProcedureCodeSequence = Sequence([_code_item(markers)])
    source = Dataset()  # kept by the profile (X/Z/U*): the UID inside must be remapped, the name removed
    source.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    source.ReferencedSOPInstanceUID = markers.uid()
    source.OperatorsName = markers.text("PN")
    ds.SourceImageSequence = Sequence([source])
    anatomy = Dataset()  # a sequence not in the table (kept, codes too): its items are de-identified
    anatomy.CodeValue, anatomy.CodingSchemeDesignator, anatomy.CodeMeaning = "T-D3000", "SRT", "Chest"
    anatomy.PerformingPhysicianName = markers.text("PN")
    anatomy.add_new(0x00230010, "LO", PRIVATE_CREATOR)
    anatomy.add_new(0x00231001, "LO", markers.text())
    ds.AnatomicRegionSequence = Sequence([anatomy])


def _overlay_and_curve(ds: Dataset, markers: Markers) -> None:
    """Overlay plane 6000 with data spelling a marker, its comments/description/label, and a curve (5000)."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    ds.add_new(0x60000010, "US", rows)
    ds.add_new(0x60000011, "US", cols)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    text = markers.text().encode()
    bits = (text * (rows * cols // 8 // len(text) + 1))[: rows * cols // 8]
    ds.add_new(0x60003000, "OW", bits)
    ds.add_new(0x60000022, "LO", markers.text())  # Overlay Description
    ds.add_new(0x60001500, "LO", markers.text())  # Overlay Label
    ds.add_new(0x60004000, "LT", markers.text())  # Overlay Comments
    ds.add_new(0x50002500, "LO", markers.text())  # Curve Label (retired)
    ds.add_new(0x50003000, "OB", markers.text().encode() * 4)  # Curve Data (retired)


def phi_dataset(path, index: int = 0) -> tuple[Dataset, list[str]]:
    """The DICOM file at ``path`` with PHI written into ≥ 60 Table E.1-1 attributes, sequences, private
    tags, an overlay and a curve; returns the dataset and its PHIMK marker values."""
    ds = pydicom.dcmread(path)
    markers = Markers()
    for keyword in TEXT_ATTRIBUTES:
        vr = dictionary_VR(keyword)
        if vr == "SQ":
            setattr(ds, keyword, Sequence([_code_item(markers)]))
        else:
            setattr(ds, keyword, markers.text(vr))
    for keyword, value in OTHER_VALUES.items():
        setattr(ds, keyword, value)
    for keyword in OTHER_UIDS:
        setattr(ds, keyword, markers.uid() if keyword != "SeriesInstanceUID" else f"{UID_MARK}.1000")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{UID_MARK}.2{index:03d}"
    for keyword, value in ID_TEXT.items():
        setattr(ds, keyword, value)
    ds.StudyInstanceUID = f"{ID_UID_MARK}.1"
    _sequences(ds, markers)
    block = ds.private_block(0x0009, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", markers.text())
    block.add_new(0x02, "UT", markers.text())
    _overlay_and_curve(ds, markers)
    ds.file_meta.SourceApplicationEntityTitle = markers.text("AE")
    ds.preamble = (markers.text().encode() * 16)[:128]
    return ds, markers.values + list(OTHER_VALUES.values()) + [UID_MARK]


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def phi_jpeg(pixels: np.ndarray) -> bytes:
    """JPEG with EXIF (artist, description, user comment), a COM comment, an ICC profile and XMP, all marked."""
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x013B] = f"{MARK}_EXIF_ARTIST"
    exif[0x010E] = f"{MARK}_EXIF_DESCRIPTION"
    exif[0x8298] = f"{MARK}_EXIF_COPYRIGHT"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, comment=f"{MARK}_JPEG_COMMENT",
               icc_profile=f"{MARK}_ICC_PROFILE".encode() * 8, xmp=f"<x>{MARK}_XMP</x>".encode(), quality=95)
    return buffer.getvalue()


def phi_png(pixels: np.ndarray) -> bytes:
    """PNG with tEXt and iTXt chunks and EXIF, all marked."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", f"{MARK}_PNG_TEXT")
    info.add_itxt("Description", f"{MARK}_PNG_ITXT", lang="en", tkey="Description")
    exif = Image.Exif()
    exif[0x013B] = f"{MARK}_PNG_EXIF"
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=info, exif=exif)
    return buffer.getvalue()


PHI_FILE_NAMES = (f"{MARK}_DOE_JANE_MRN_{{}}.jpg", f"{MARK}_DOE_JANE_MRN_{{}}.png", f"{MARK}_DOE^JANE_{{}}.dcm")


def find_markers(blob: bytes, *, ids: bool = True) -> list[str]:
    """Marker strings present in ``blob`` (PHIMK always; IDMK and the study UID marker when ``ids``)."""
    found = []
    for marker in (MARK, UID_MARK, *OTHER_VALUES.values()) + ((ID_MARK, ID_UID_MARK) if ids else ()):
        at = blob.find(marker.encode())
        if at >= 0:
            found.append(f"{marker} at byte {at}: {blob[max(0, at - 40): at + 40]!r}")
    return found
