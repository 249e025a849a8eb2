"""De-identify one pydicom dataset with the PS3.15 Basic Profile (see :mod:`lesiondx.io.deid`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

from pydicom.datadict import dictionary_has_tag, repeater_has_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from .table import BIRTH, PATIENT_CHARACTERISTICS, TEMPORAL_VRS, action_for, is_overlay_or_curve

_UID_ROOT = "2.25."
DATE_OPTIONS = ("remove", "shift", "full")
MAX_SHIFT_DAYS = 3650
# "D" (dummy) values by VR; VRs not listed are removed instead.
DUMMY = {"AE": "ANONYMOUS", "AS": "000Y", "CS": "ANONYMIZED", "DA": "19000101", "DS": "0", "DT": "19000101000000",
         "IS": "0", "LO": "ANONYMIZED", "LT": "ANONYMIZED", "PN": "ANONYMIZED", "SH": "ANONYMIZED",
         "ST": "ANONYMIZED", "TM": "000000", "UC": "ANONYMIZED", "UT": "ANONYMIZED", "FL": 0.0, "FD": 0.0,
         "SL": 0, "SS": 0, "UL": 0, "US": 0, "SV": 0, "UV": 0}
# (code value, meaning) of DeidentificationMethodCodeSequence items, CID 7050.
CODE_BASIC = ("113100", "Basic Application Confidentiality Profile")
CODE_FULL_DATES = ("113106", "Retain Longitudinal Temporal Information Full Dates Option")
CODE_MODIFIED_DATES = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
CODE_PATIENT_CHARS = ("113108", "Retain Patient Characteristics Option")
KEEP_FILE_META = ("TransferSyntaxUID", "MediaStorageSOPClassUID")
PHASES = ("portal-venous", "arterial", "delayed", "non-contrast")  # the closed vocabulary of io.dicom.guess_phase


@dataclass(frozen=True)
class DeidOptions:
    """Profile options. ``dates``: "remove" (Basic Profile), "shift" (Modified Dates: every date moved back by
    a salted per-patient offset of 1-3650 days, times kept) or "full" (Full Dates); ``patient_characteristics``:
    keep age, sex, size, weight, sex neutered and pregnancy status (Retain Patient Characteristics)."""

    dates: str = "remove"
    patient_characteristics: bool = False

    def __post_init__(self) -> None:
        if self.dates not in DATE_OPTIONS:
            raise ValueError(f"dates option {self.dates!r} is not one of {', '.join(DATE_OPTIONS)}")


def remap_uid(uid: str, salt: str) -> str:
    """A new UID (``2.25.<int>``, ≤ 64 chars) determined by ``uid`` and a secret ``salt``."""
    digest = hashlib.sha256(f"{salt}|{uid}".encode()).digest()
    return _UID_ROOT + str(int.from_bytes(digest[:16], "big"))


def pseudonym(value: str, salt: str, prefix: str = "ANON") -> str:
    """A stable pseudonymous id for a patient id (same input and salt, same output)."""
    return f"{prefix}-{hashlib.sha256(f'{salt}|id|{value}'.encode()).hexdigest()[:12].upper()}"


def date_shift_days(patient_pseudonym: str, salt: str) -> int:
    """Days every date of one patient moves back under the Modified Dates option (1-3650, salted)."""
    digest = hashlib.sha256(f"{salt}|shift|{patient_pseudonym}".encode()).digest()
    return 1 + int.from_bytes(digest[:4], "big") % MAX_SHIFT_DAYS


def _shift_one(value: str, vr: str, days: int) -> str | None:
    """``value`` (DA or DT) moved back ``days`` days; TM unchanged; None when it cannot be parsed."""
    text = str(value).strip()
    if vr == "TM":
        return text
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        moved = date(int(text[:4]), int(text[4:6]), int(text[6:8])) - timedelta(days=days)
    except ValueError:
        return None
    return moved.strftime("%Y%m%d") + text[8:]


@dataclass(frozen=True)
class _Context:
    salt: str
    options: DeidOptions
    shift_days: int


def _temporal(item: Dataset, elem: DataElement, ctx: _Context) -> bool:
    """Apply the longitudinal option to a date/time element; False when the table's action applies."""
    if elem.VR not in TEMPORAL_VRS or elem.tag in BIRTH or ctx.options.dates == "remove":
        return False
    if ctx.options.dates == "shift" and elem.value not in (None, ""):
        values = list(elem.value) if elem.VM > 1 else [elem.value]
        shifted = [_shift_one(str(v), elem.VR, ctx.shift_days) for v in values]
        if any(v is None for v in shifted):
            del item[elem.tag]
            return True
        elem.value = shifted if len(shifted) > 1 else shifted[0]
    return True


def _apply(item: Dataset, elem: DataElement, code: str, ctx: _Context) -> None:
    """Carry out one Table E.1-1 action on ``elem`` of ``item``."""
    tag = elem.tag
    if ctx.options.patient_characteristics and tag in PATIENT_CHARACTERISTICS:
        return
    if _temporal(item, elem, ctx):
        return
    if code == "U":
        if elem.VR == "UI" and elem.value:
            values = list(elem.value) if elem.VM > 1 else [elem.value]
            new = [UID(remap_uid(str(v), ctx.salt)) for v in values if str(v).strip()]
            elem.value = new if len(new) > 1 else (new[0] if new else "")
        return
    if code == "X/Z/U*":  # keep the references, remap the instance UIDs they hold
        if elem.VR == "SQ":
            for child in elem.value:
                _clean(child, ctx)
        else:
            del item[tag]
        return
    if code.startswith("X"):
        del item[tag]
    elif code in ("Z", "Z/D") or elem.VR == "SQ":  # a dummy sequence item could only repeat what was removed
        elem.value = Sequence() if elem.VR == "SQ" else None
    elif elem.VR in DUMMY:  # "D"
        elem.value = DUMMY[elem.VR]
    else:
        del item[tag]


def _clean(item: Dataset, ctx: _Context) -> None:
    """Apply the profile to every element of ``item`` and, recursively, of its sequences."""
    for elem in list(item):
        tag = elem.tag
        if tag.is_private or tag.element == 0 or is_overlay_or_curve(tag):
            del item[tag]
            continue
        code = action_for(tag)
        if code is not None:
            _apply(item, elem, code, ctx)
        elif not (dictionary_has_tag(tag) or repeater_has_tag(tag)):
            del item[tag]  # an attribute the dictionary does not know cannot be judged: removed
        elif elem.VR == "SQ":
            for child in elem.value:
                _clean(child, ctx)


def _method_codes(options: DeidOptions) -> list[tuple[str, str]]:
    codes = [CODE_BASIC]
    if options.dates == "full":
        codes.append(CODE_FULL_DATES)
    elif options.dates == "shift":
        codes.append(CODE_MODIFIED_DATES)
    if options.patient_characteristics:
        codes.append(CODE_PATIENT_CHARS)
    return codes


def _mark(ds: Dataset, options: DeidOptions) -> None:
    """PatientIdentityRemoved, DeidentificationMethod(CodeSequence), LongitudinalTemporalInformationModified."""
    codes = _method_codes(options)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [meaning[:64] for _, meaning in codes]
    items = []
    for value, meaning in codes:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
        items.append(code)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = {"remove": "REMOVED", "shift": "MODIFIED",
                                                  "full": "UNMODIFIED"}[options.dates]


def _clean_file_meta(ds: Dataset) -> None:
    """File meta keeps the transfer syntax and SOP class only (the writer adds its own implementation UID)."""
    old = getattr(ds, "file_meta", None)
    if old is None:
        return
    meta = FileMetaDataset()
    for keyword in KEEP_FILE_META:
        if keyword in old:
            setattr(meta, keyword, old[keyword].value)
    meta.MediaStorageSOPInstanceUID = UID(str(ds.SOPInstanceUID))
    ds.file_meta = meta


def deidentify(ds: Dataset, salt: str, *, options: DeidOptions | None = None, keep_dates: bool = False,
               phase: str | None = None) -> Dataset:
    """De-identify ``ds`` in place with PS3.15 Table E.1-1 and return it.

    - every listed attribute gets its table action (X remove, Z empty, D dummy, U salted
      :func:`remap_uid`), in sequences too; private tags, overlays (60xx), curves (50xx) and
      attributes unknown to the DICOM dictionary are removed; the file meta and preamble are rebuilt;
    - PatientID and PatientName become a salted :func:`pseudonym` (one patient's files still group);
      an empty SOPInstanceUID gets a deterministic one from the study, series and instance number;
    - ``phase`` (one of :data:`PHASES`, from :func:`lesiondx.io.guess_phase` before de-identification)
      is written back as the SeriesDescription, the only free text that survives;
    - PatientIdentityRemoved, DeidentificationMethod and its code sequence (DCM 113100 + options) are set.

    ``keep_dates=True`` is the older spelling of ``options=DeidOptions(dates="full")``.
    """
    options = options or DeidOptions(dates="full" if keep_dates else "remove")
    original_pid = str(ds.get("PatientID", "") or ds.get("PatientName", "") or "unknown")
    patient = pseudonym(original_pid, salt)
    if not str(ds.get("SOPInstanceUID", "") or "").strip():
        basis = f"{ds.get('StudyInstanceUID', '')}|{ds.get('SeriesInstanceUID', '')}|{ds.get('InstanceNumber', '')}"
        ds.SOPInstanceUID = remap_uid("missing-sop|" + basis, salt)
    _clean(ds, _Context(salt, options, date_shift_days(patient, salt)))
    _clean_file_meta(ds)
    ds.preamble = b"\0" * 128  # a preamble may hold another format's header (dual-personality files)
    ds.PatientID = patient
    ds.PatientName = patient
    if phase in PHASES:
        ds.SeriesDescription = phase
    _mark(ds, options)
    return ds
