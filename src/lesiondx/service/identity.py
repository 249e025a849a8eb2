"""Original ↔ pseudonym mapping: what is needed to file results under the patient's own study.

lesiondx stores only de-identified DICOM (PatientID ``ANON-…``, UIDs remapped one-way by
:func:`lesiondx.io.deid.remap_uid`). To send results back *inside the original study*, the
original identifiers of each received instance are captured before de-identification
(:func:`capture`) and kept in the ``identity_map`` table (:class:`~lesiondx.service.db.IdentityRecord`),
one row per stored instance:

* ``pseudo_sop_uid`` — the SOPInstanceUID of the stored (de-identified) file, the lookup key;
* ``study_key`` — an HMAC-SHA256 of the original StudyInstanceUID keyed with the storage salt
  (no UID is stored in clear; equal studies give equal keys);
* ``sealed`` — the original values (:data:`STUDY_KEYWORDS` + :data:`INSTANCE_KEYWORDS`) as JSON,
  encrypted with Fernet (AES-128-CBC + HMAC-SHA256, ``cryptography``) under a key derived with
  HKDF-SHA256 from the storage salt (``storage/secret.key``, mode 0600).

What protects them: a copy of the database alone reveals nothing but ciphertext; whoever holds the
database *and* ``secret.key`` can read them (as the service must, to send results back). Keep the
key out of database backups. The values are never returned by the API nor logged, and are deleted
with their study and after ``LESIONDX_RETENTION_DAYS`` (:func:`purge_expired`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydicom.dataset import Dataset
from sqlalchemy import delete, select

from .db import Database, IdentityRecord, Study, StudyFile, utcnow

# Patient / study attributes results must carry to land in the original study.
STUDY_KEYWORDS: tuple[str, ...] = (
    "PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
    "AccessionNumber", "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyDescription",
)
# Per-instance attributes results must reference (SEG / SR / SC source image references, frame of reference).
INSTANCE_KEYWORDS: tuple[str, ...] = ("SOPInstanceUID", "SOPClassUID", "SeriesInstanceUID", "FrameOfReferenceUID")


@dataclass(frozen=True)
class OriginalIds:
    """Original identifiers of one instance (``keyword → value`` as DICOM text) and, once stored,
    the SOPInstanceUID it was given by de-identification."""

    values: dict[str, str] = field(default_factory=dict)
    pseudo_sop_uid: str = ""

    @property
    def study(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if k in STUDY_KEYWORDS}


def capture(ds: Dataset) -> OriginalIds:
    """The original identifiers of ``ds`` (call *before* de-identification). Pure; never raises."""
    values: dict[str, str] = {}
    for keyword in STUDY_KEYWORDS + INSTANCE_KEYWORDS:
        try:
            value = ds.get(keyword)
        except Exception:  # malformed value: it is simply not carried back
            continue
        if value is not None and str(value).strip():
            values[keyword] = str(value).strip()
    return OriginalIds(values)


class Sealer:
    """Encrypts/decrypts mapping values with a key derived from the storage salt (HKDF-SHA256 → Fernet)."""

    def __init__(self, salt: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"lesiondx identity map v1").derive(salt.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._mac_key = hashlib.sha256(b"lesiondx study key|" + salt.encode()).digest()

    def seal(self, values: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode()).decode("ascii")

    def open(self, token: str) -> dict[str, str]:
        """The sealed values; ``{}`` when the token was sealed with another salt or is damaged."""
        try:
            return dict(json.loads(self._fernet.decrypt(token.encode("ascii"))))
        except (InvalidToken, ValueError):
            return {}

    def study_key(self, original_study_uid: str) -> str:
        """Keyed hash (HMAC-SHA256, hex) of an original StudyInstanceUID."""
        return hmac.new(self._mac_key, original_study_uid.encode(), hashlib.sha256).hexdigest()


def record_for(original: OriginalIds, sealer: Sealer) -> IdentityRecord:
    """A new mapping row for one stored instance (attach it to its ``StudyFile.identity``)."""
    return IdentityRecord(study_key=sealer.study_key(original.values.get("StudyInstanceUID", "")),
                          pseudo_sop_uid=original.pseudo_sop_uid[:64], sealed=sealer.seal(original.values))


@dataclass(frozen=True)
class StudyOriginals:
    """The originals of one lesiondx study: study-level values and per-instance values by pseudonymous SOP UID."""

    study: dict[str, str]
    instances: dict[str, dict[str, str]]


def originals_for_study(db: Database, study_id: str, sealer: Sealer) -> StudyOriginals | None:
    """Decrypted originals of a study's stored instances; ``None`` when it has none (PNG/JPG, expired)."""
    with db.session() as s:
        rows = s.scalars(select(IdentityRecord).join(StudyFile).where(StudyFile.study_id == study_id)).all()
        sealed = [(r.pseudo_sop_uid, r.sealed) for r in rows]
    instances = {pseudo: sealer.open(token) for pseudo, token in sealed}
    instances = {k: v for k, v in instances.items() if v}
    if not instances:
        return None
    study: dict[str, str] = {}
    for values in instances.values():  # the first instance that has a value wins, attribute by attribute
        for keyword in STUDY_KEYWORDS:
            if keyword in values and keyword not in study:
                study[keyword] = values[keyword]
    return StudyOriginals(study, instances)


def purge_expired(db: Database, retention_days: float | None) -> int:
    """Delete the mapping rows of studies created more than ``retention_days`` ago; how many rows.

    The pseudonymous study and its results stay; its results can no longer be sent to the PACS.
    """
    if retention_days is None or retention_days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=retention_days)
    with db.session() as s, s.begin():
        old_files = select(StudyFile.id).join(Study).where(Study.created_at < cutoff)
        result = s.execute(delete(IdentityRecord).where(IdentityRecord.file_id.in_(old_files)))
        return int(result.rowcount or 0)


__all__ = ["INSTANCE_KEYWORDS", "OriginalIds", "STUDY_KEYWORDS", "Sealer", "StudyOriginals", "capture",
           "originals_for_study", "purge_expired", "record_for"]
