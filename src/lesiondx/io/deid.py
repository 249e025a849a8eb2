"""DICOM de-identification: remove or replace PHI, remap UIDs consistently.

Follows the spirit of the DICOM PS3.15 Basic Application Level Confidentiality Profile: direct
identifiers are emptied or replaced, private tags and curves/overlays dropped, and every UID is
replaced by a deterministic one derived from a secret salt, so the same study keeps one new UID
across files and sessions (needed to group uploads) while the original cannot be recovered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from pydicom.dataset import Dataset
from pydicom.uid import UID

# Tags emptied (type 2 attributes keep an empty value) or removed.
PHI_KEYWORDS: tuple[str, ...] = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "PatientAddress",
    "PatientTelephoneNumbers", "OtherPatientIDs", "OtherPatientNames", "OtherPatientIDsSequence",
    "PatientMotherBirthName", "MilitaryRank", "EthnicGroup", "Occupation", "AdditionalPatientHistory",
    "PatientComments", "PatientInsurancePlanCodeSequence", "MedicalRecordLocator",
    "ReferringPhysicianName", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "OperatorsName", "PhysiciansOfRecord",
    "RequestingPhysician", "ScheduledPerformingPhysicianName", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "StationName", "AccessionNumber", "StudyID", "DeviceSerialNumber",
    "RequestAttributesSequence", "ContentSequence", "IssuerOfPatientID", "PatientBirthName",
    "CountryOfResidence", "RegionOfResidence", "CurrentPatientLocation", "PatientState",
    "ResponsiblePerson", "ResponsibleOrganization", "StudyComments", "ImageComments",
    "RequestedProcedureID", "PerformedProcedureStepID", "ScheduledProcedureStepID",
)
# Dates/times dropped to the year's first day / midnight would still leak little; we empty them.
DATE_KEYWORDS: tuple[str, ...] = (
    "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "StudyTime", "SeriesTime",
    "AcquisitionTime", "ContentTime", "AcquisitionDateTime", "InstanceCreationDate", "InstanceCreationTime",
)
UID_KEYWORDS: tuple[str, ...] = (
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
    "MediaStorageSOPInstanceUID", "ReferencedSOPInstanceUID", "IrradiationEventUID",
)
_UID_ROOT = "2.25."


def remap_uid(uid: str, salt: str) -> str:
    """A new UID (``2.25.<int>``, ≤ 64 chars) determined by ``uid`` and a secret ``salt``."""
    digest = hashlib.sha256(f"{salt}|{uid}".encode()).digest()
    return _UID_ROOT + str(int.from_bytes(digest[:16], "big"))


def pseudonym(value: str, salt: str, prefix: str = "ANON") -> str:
    """A stable pseudonymous id for a patient id (same input and salt, same output)."""
    return f"{prefix}-{hashlib.sha256(f'{salt}|id|{value}'.encode()).hexdigest()[:12].upper()}"


def _walk(ds: Dataset) -> Iterable[Dataset]:
    yield ds
    for elem in list(ds):
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item)


def deidentify(ds: Dataset, salt: str, *, keep_dates: bool = False) -> Dataset:
    """De-identify ``ds`` in place and return it.

    - PHI attributes are removed (type 1/2 patient attributes replaced: PatientID and PatientName
      become a salted pseudonym so one patient's files still group together);
    - all UIDs (incl. in sequences and file meta) are remapped with :func:`remap_uid`; empty
      SOPInstanceUIDs get a fresh deterministic one from the study, series and instance number;
    - private tags are removed; PatientIdentityRemoved = YES and DeidentificationMethod are set.
    """
    original_pid = str(ds.get("PatientID", "") or ds.get("PatientName", "") or "unknown")
    if not str(ds.get("SOPInstanceUID", "")).strip():
        basis = f"{ds.get('StudyInstanceUID', '')}|{ds.get('SeriesInstanceUID', '')}|{ds.get('InstanceNumber', '')}"
        ds.SOPInstanceUID = remap_uid("missing-sop|" + basis, salt)
    for item in _walk(ds):
        item.remove_private_tags()
        for keyword in PHI_KEYWORDS + (() if keep_dates else DATE_KEYWORDS):
            if keyword in item:
                delattr(item, keyword)
        for keyword in UID_KEYWORDS:
            value = str(item.get(keyword, "") or "")
            if value:
                setattr(item, keyword, UID(remap_uid(value, salt)))
    if hasattr(ds, "file_meta") and ds.file_meta is not None:
        ds.file_meta.MediaStorageSOPInstanceUID = UID(str(ds.SOPInstanceUID))
    ds.PatientID = pseudonym(original_pid, salt)
    ds.PatientName = ds.PatientID
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "lesiondx basic profile: PHI removed, UIDs remapped (salted SHA-256)"
    return ds
