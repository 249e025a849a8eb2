"""PS3.15 Table E.1-1 as a lookup: tag → action code, plus the two option columns lesiondx offers.

The Basic Profile column comes from ``dicom-anonymizer`` (KitwareMedical), whose
``dicomfields_2026c`` module is generated from the current edition of the standard's table
(655 attributes, repeating groups as masks). The option columns are not in that package, so the
attributes they *keep* are listed here, each checked against Table E.1-1 (columns "Rtn. Pat.
Chars. Opt." and "Rtn. Long. Full Dates Opt."); attributes the standard marks "C" (clean) under an
option are still removed, because cleaning free text cannot be automated safely.
"""

from __future__ import annotations

from functools import cache

from pydicom.tag import BaseTag, Tag

TABLE_MODULE = "dicomfields_2026c"
# dicom-anonymizer's category → the Table E.1-1 action code it stands for.
CATEGORY_CODES = {"D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D", "X_Z_TAGS": "X/Z",
                  "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*"}

# "K" in the Retain Patient Characteristics Option column (age, sex, size, weight and the like).
PATIENT_CHARACTERISTICS = frozenset(Tag(k) for k in (
    "PatientAge", "PatientSex", "PatientSize", "PatientWeight", "PatientSexNeutered", "PregnancyStatus"))
# Never kept by the longitudinal option (birth date/time identify; age is a patient characteristic).
# Coded sequences the Basic Profile keeps whose CodeMeaning is site-defined text ("CT CHEST DOE JANE MRN..."):
# removed, as the Clean Descriptors Option would clean them; the models do not read them.
# Issuer sequences the table does not list name the hospital (its OID and name as issuer of the MRN, the
# accession number, the orders) next to the removed identifiers they qualify: removed with them.
EXTRA_REMOVED = frozenset(Tag(k) for k in (
    "ProcedureCodeSequence", "RequestedProcedureCodeSequence", "PerformedProtocolCodeSequence",
    "ScheduledProtocolCodeSequence", "IssuerOfPatientIDQualifiersSequence", "IssuerOfAccessionNumberSequence",
    "OrderPlacerIdentifierSequence", "OrderFillerIdentifierSequence"))
# Instance UIDs the table does not list (legacy-converted enhanced CT's source instances, concatenation
# source, other frames of reference): remapped ("U") like the listed ones, so none links back in clear.
EXTRA_REMAPPED = frozenset(Tag(k) for k in (
    "MultiFrameSourceSOPInstanceUID", "SOPInstanceUIDOfConcatenationSource", "TableFrameOfReferenceUID",
    "VolumeFrameOfReferenceUID", "TargetFrameOfReferenceUID", "EquipmentFrameOfReferenceUID",
    "RadiopharmaceuticalAdministrationEventUID", "ReferencedFiducialUID"))
BIRTH = frozenset(Tag(k) for k in ("PatientBirthDate", "PatientBirthTime"))
TEMPORAL_VRS = ("DA", "DT", "TM")


@cache
def basic_profile() -> tuple[dict[int, str], tuple[tuple[int, int, int, int, str], ...]]:
    """``({tag: code}, ((group, element, group_mask, element_mask, code), ...))`` of Table E.1-1."""
    from importlib import import_module

    module = import_module(f"dicomanonymizer.dicom_anonymization_databases.{TABLE_MODULE}")
    exact: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for category, code in CATEGORY_CODES.items():
        for entry in getattr(module, category):
            if len(entry) == 2:
                exact[int(Tag(entry[0], entry[1]))] = code
            else:
                group, element, group_mask, element_mask = entry
                masked.append((group, element, group_mask, element_mask, code))
    return exact, tuple(masked)


def action_for(tag: BaseTag) -> str | None:
    """The Basic Profile action code of ``tag`` ("X", "Z", "D", "U", "Z/D", ...) or None when not listed."""
    exact, masked = basic_profile()
    if tag in EXTRA_REMOVED:
        return "X"
    if tag in EXTRA_REMAPPED:
        return "U"
    code = exact.get(int(tag))
    if code is not None:
        return code
    for group, element, group_mask, element_mask, masked_code in masked:
        if tag.group & group_mask == group and tag.element & element_mask == element:
            return masked_code
    return None


def is_overlay_or_curve(tag: BaseTag) -> bool:
    """Overlay planes (60xx, even groups 6000-601E) and retired curves (50xx, even groups 5000-501E)."""
    return tag.group % 2 == 0 and (0x5000 <= tag.group <= 0x501E or 0x6000 <= tag.group <= 0x601E)
