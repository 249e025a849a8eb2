"""PACS export: a durable queue on the ``studies`` table, C-STORE with retry and back-off.

State of a study's export (``Study.export_state``, detail as JSON in ``Study.export_status``, shown
by the API as ``export``): ``pending`` → ``sending`` → ``sent`` | ``failed`` (with the reason and,
while attempts remain, ``next_try_at``; waits from ``settings.export_retry_seconds``, the last one
repeating, at most ``settings.export_max_attempts`` attempts). :func:`queue_export` (called after
every successful job, including a re-run of a reopened study) puts a study back to ``pending``; the
:class:`Exporter` thread sends due exports, and at start re-queues exports a dead process left
``sending``. Exports that gave up on an unreachable PACS are queued again once it takes results (the next
successful send) and at start-up; any given-up export of a study its sender sends again (instances it already
holds) is queued again when that association ends. It also deletes expired identity mappings (``settings.retention_days``).

Each result version goes with its own UIDs (:mod:`.build`); ``sent_versions`` in the detail lists the versions the
PACS took (version, task, the SOP class the SR went as), so the next version's SR names the last SR the PACS got
as its predecessor and a re-send of a version sends the same objects. Earlier versions stay in the PACS.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom import sop_class as sop_classes
from pynetdicom.sop_class import Comprehensive3DSRStorage, ComprehensiveSRStorage
from sqlalchemy import or_, select, update

from ..db import IdentityRecord, Study, StudyFile, utcnow
from ..identity import StudyOriginals, originals_for_study, purge_expired
from ..settings import PacsTarget
from ..storage import log_failure
from .build import SentSR, build_result_objects

log = logging.getLogger("lesiondx.service.pacs")
PURGE_EVERY_S = 3600.0
UID_LIKE = re.compile(r"\b\d+(?:\.\d+){4,}\b")


def scrub(text: str, originals: StudyOriginals | None) -> str:
    """``text`` (an error message shown by the API) without any original identifier or UID in it."""
    if originals is not None:
        values = {v for values in (originals.study, *originals.instances.values()) for v in values.values() if len(v) > 2}
        for value in sorted(values, key=len, reverse=True):
            text = text.replace(value, "[original]")
    return UID_LIKE.sub("[uid]", text)


# A PACS that does not take Comprehensive 3D SR often takes Comprehensive SR: the report holds no 3D coordinates,
# so the same content is a valid Comprehensive SR and goes as one.
SOP_FALLBACK = {Comprehensive3DSRStorage: ComprehensiveSRStorage}


def send(objects: list[Dataset], target: PacsTarget, *, calling_aet: str = "LESIONDX", timeout: float = 30
         ) -> list[int | None]:
    """C-STORE every object to ``target``; the DIMSE status of each, None for an object whose SOP class (nor its
    fallback, :data:`SOP_FALLBACK`, set on the object when used) the PACS accepted (raises ConnectionError
    without association)."""
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    classes = list(dict.fromkeys(str(ds.SOPClassUID) for ds in objects))
    for sop_class in dict.fromkeys(classes + [SOP_FALLBACK[c] for c in classes if c in SOP_FALLBACK]):
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate(target.host, target.port, ae_title=target.aet)
    if not assoc.is_established and assoc.rejected_contexts and not assoc.accepted_contexts:
        return [None] * len(objects)  # associated, but none of the SOP classes is taken (pynetdicom aborts)
    if not assoc.is_established:
        raise ConnectionError(f"PACS {target} refused the association or is unreachable")
    accepted = {str(context.abstract_syntax) for context in assoc.accepted_contexts}
    statuses: list[int | None] = []
    try:
        for ds in objects:
            sop_class = str(ds.SOPClassUID)
            if sop_class not in accepted and SOP_FALLBACK.get(sop_class) in accepted:
                ds.SOPClassUID = SOP_FALLBACK[sop_class]
                if getattr(ds, "file_meta", None) is not None:
                    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            elif sop_class not in accepted:
                statuses.append(None)
                continue
            status = assoc.send_c_store(ds)
            statuses.append(int(status.Status) if status and "Status" in status else -1)
    finally:
        assoc.release()
    return statuses


def _not_taken(objects: list[Dataset], statuses: list[int | None]) -> list[str]:
    """The SOP class names of the objects the PACS accepted no presentation context for."""
    names = [UID(str(ds.SOPClassUID)).name for ds, status in zip(objects, statuses) if status is None]
    return list(dict.fromkeys(names))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _set_state(core: Any, study_id: str, state: str, *, after_send: bool = False, **detail: Any) -> None:
    """Store the export state; ``after_send``: only if still ``sending`` (a re-run queued meanwhile wins)."""
    with core.db.session() as s, s.begin():
        study = s.get(Study, study_id)
        if study is None or (after_send and study.export_state != "sending"):
            return
        study.export_state = state
        study.export_next_at = detail.pop("next_at", None)
        payload = {"state": state, "attempts": study.export_attempts, "version": study.export_version,
                   "sent_versions": sent_versions(study),
                   "target": str(core.settings.pacs) if core.settings.pacs else None, **detail,
                   "next_try_at": _iso(study.export_next_at), "updated_at": _iso(utcnow())}
        study.export_status = json.dumps(payload)


def export_detail(study: Study) -> dict[str, Any] | None:
    """The export state the API shows (``state``, ``attempts``, ``reason``, ``next_try_at``...); None if never queued."""
    if not study.export_status:
        return None
    try:
        value = json.loads(study.export_status)
    except ValueError:  # written by an older lesiondx: plain text
        return {"state": "sent" if study.export_status.startswith("sent") else "failed", "reason": study.export_status}
    return value if isinstance(value, dict) else None


def sent_versions(study: Study) -> list[dict[str, Any]]:
    """The result versions the PACS took, oldest first: ``{"version", "task", "sr", "sent_at"}`` (``sr``: the SOP class
    keyword the SR went as, None when the PACS took no SR)."""
    detail = export_detail(study) or {}
    value = detail.get("sent_versions")
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict) and isinstance(v.get("version"), int)]
    if (study.export_version or 0) > 0 or detail.get("state") == "sent":
        # sent by a lesiondx that kept no list (before 2026-12-06): its objects went under the version-1 UIDs, the SR as
        # a Comprehensive 3D SR; listed, so the study page shows it and a later version names it as predecessor
        return [{"version": 1, "task": study.task, "sr": "Comprehensive3DSRStorage", "sent_at": detail.get("sent_at"),
                 "recorded_by": "an earlier lesiondx"}]
    return []


def _record_sent(study: Study, version: int, task: str, sr_class: str | None) -> None:
    """Add (or renew, for a re-send) ``version`` in the study's ``sent_versions``."""
    recorded = sent_versions(study)
    history = [v for v in recorded if v["version"] != version]
    before = next((v for v in recorded if v["version"] == version), {})
    history.append({"version": version, "task": task, "sent_at": _iso(utcnow()),
                    "sr": UID(sr_class).keyword if sr_class else before.get("sr")})
    payload = export_detail(study) or {}
    payload["sent_versions"] = sorted(history, key=lambda v: v["version"])
    study.export_status = json.dumps(payload)


def predecessor_sr(study: Study, version: int) -> SentSR | None:
    """The SR of the latest version before ``version`` that the PACS took (for a study sent by a lesiondx that kept no
    ``sent_versions``, its SR under the version-1 UIDs: see :func:`sent_versions`)."""
    history = sent_versions(study)
    earlier = [v for v in history if v["version"] < version and v.get("sr")]
    if not earlier:
        return None
    last = max(earlier, key=lambda v: v["version"])
    sop_class = getattr(sop_classes, str(last["sr"]), None)
    return SentSR(last["version"], str(last.get("task") or study.task or "unknown"),
                  str(sop_class) if isinstance(sop_class, str) else Comprehensive3DSRStorage)


def has_dicom_identity(core: Any, study_id: str) -> bool:
    """Whether the study has stored DICOM with a kept mapping (PNG/JPG uploads have none)."""
    with core.db.session() as s:
        return s.scalar(select(IdentityRecord.id).join(StudyFile).where(StudyFile.study_id == study_id).limit(1)) is not None


def queue_export(core: Any, study_id: str) -> bool:
    """Queue (or re-queue, as a new version) a study's results for the PACS; False when nothing is to be sent
    (no PACS configured, or a study without DICOM of its own)."""
    if core.settings.pacs is None or not has_dicom_identity(core, study_id):
        return False
    with core.db.session() as s, s.begin():
        study = s.get(Study, study_id)
        if study is None:
            return False
        study.export_attempts = 0
    _set_state(core, study_id, "pending", next_at=utcnow())
    exporter = getattr(core, "exporter", None)
    if exporter is not None:
        exporter.wake()
    return True


def _claim(core: Any) -> str | None:
    """Take a due export (``sending``, one attempt more); its study id or None. A next try further ahead than the
    longest configured wait was set before the clock went back: it is due now, not that much later."""
    now = utcnow()
    longest = timedelta(seconds=max(core.settings.export_retry_seconds or (60.0,)))
    with core.db.session() as s:
        due = s.scalars(select(Study.id).where(Study.export_state.in_(("pending", "failed")),
                                               Study.export_next_at.is_not(None),
                                               or_(Study.export_next_at <= now, Study.export_next_at > now + longest))
                        .order_by(Study.export_next_at).limit(5)).all()
    for study_id in due:
        with core.db.session() as s, s.begin():
            claimed = s.execute(update(Study).where(Study.id == study_id, Study.export_state.in_(("pending", "failed")))
                                .values(export_state="sending", export_attempts=Study.export_attempts + 1))
        if claimed.rowcount:
            return study_id
    return None


def export_once(core: Any, study_id: str) -> str:
    """One attempt at sending a claimed study; stores and returns the new state."""
    target = core.settings.pacs
    with core.db.session() as s:
        study = s.get(Study, study_id)
        attempts = study.export_attempts if study else 0
        # the result's own version when the study tracks one (reopened studies), else one more than last sent
        version = (getattr(study, "result_version", 0) or (study.export_version or 0) + 1) if study else 1
        predecessor = predecessor_sr(study, version) if study else None
    _set_state(core, study_id, "sending", after_send=True)
    originals = originals_for_study(core.db, study_id, core.sealer)
    if target is None or originals is None:
        reason = "no PACS configured" if target is None else "original identifiers not kept (not DICOM, or deleted by retention)"
        _set_state(core, study_id, "failed", after_send=True, reason=reason)
        return "failed"
    try:
        study_key = core.sealer.study_key(originals.study.get("StudyInstanceUID", ""))
        built = build_result_objects(core, study_id, originals, study_key, version, predecessor)
        if not built.objects:
            _set_state(core, study_id, "failed", after_send=True, reason="nothing to send (study not done or without DICOM images)")
            return "failed"
        objects = list(built.objects)
        statuses = send(objects, target, calling_aet=core.settings.dicom_aet)
        not_taken = _not_taken(objects, statuses)
        if all(st is None for st in statuses):
            raise RuntimeError(f"the PACS accepts none of {', '.join(not_taken)} (allow them for lesiondx's AE title)")
        bad = [f"0x{st:04X}" for st in statuses if st is not None and st not in (0x0000, 0xB000, 0xB007, 0xB006)]
        if bad:
            raise RuntimeError(f"PACS answered {len(bad)} of {len(statuses)} C-STORE(s) with failure status {', '.join(sorted(set(bad)))}")
    except Exception as exc:  # PACS down, refused, bad object: retry later
        reason = scrub(f"{type(exc).__name__}: {exc}", originals)[:300]
        waits = core.settings.export_retry_seconds or (60.0,)
        if attempts >= core.settings.export_max_attempts:
            unreachable = isinstance(exc, ConnectionError)  # no association: nothing wrong with the objects
            _set_state(core, study_id, "failed", after_send=True, resume_when_pacs_back=unreachable,
                       reason=f"{reason} (gave up after {attempts} attempts" + (
                           "; sent again once the PACS takes results)" if unreachable else ")"))
        else:
            wait = waits[min(attempts - 1, len(waits) - 1)] if attempts > 0 else waits[0]
            _set_state(core, study_id, "failed", after_send=True, reason=reason, next_at=utcnow() + timedelta(seconds=wait))
        log.warning("PACS export of study %s failed (attempt %d): %s", study_id, attempts, type(exc).__name__)
        return "failed"
    sr_class = next((str(ds.SOPClassUID) for ds, st in zip(objects, statuses) if ds.get("Modality") == "SR" and st is not None),
                    None)
    with core.db.session() as s, s.begin():
        study = s.get(Study, study_id)
        if study is not None:
            study.export_version = max(study.export_version or 0, version)
            _record_sent(study, version, built.task, sr_class)
    sent = [ds.get("Modality") for ds, st in zip(objects, statuses) if st is not None]
    counts = {"SEG": sent.count("SEG"), "SR": sent.count("SR"), "SC": sent.count("OT")}
    skipped = [scrub(text, originals) for text in built.skipped] + [
        f"{name}: not sent (the PACS does not accept this SOP class from lesiondx)" for name in not_taken]
    _set_state(core, study_id, "sent", after_send=True, sent_at=_iso(utcnow()), objects=counts, skipped=skipped,
               reason=None)
    resume_given_up(core)  # the PACS takes results again
    return "sent"


def resume_given_up(core: Any, study_ids: Collection[str] | None = None) -> list[str]:
    """Queue again exports that gave up, returning their ids: without ``study_ids`` those that gave up because
    the PACS was unreachable (called once the PACS takes results again, and at start-up: a PACS down longer than
    the retries must not lose results); with ``study_ids`` any of those done studies' (their sender sent them
    again: the PACS or its configuration may have been mended)."""
    query = select(Study).where(Study.export_state == "failed", Study.export_next_at.is_(None))
    if study_ids is not None:
        query = query.where(Study.id.in_(list(study_ids)), Study.status == "done")
    with core.db.session() as s:
        ids = [study.id for study in s.scalars(query)
               if study_ids is not None or (export_detail(study) or {}).get("resume_when_pacs_back")]
    resumed = [study_id for study_id in ids if queue_export(core, study_id)]
    if resumed:
        log.info("PACS export: %d study(ies) that had given up queued again", len(resumed))
    return resumed


class Exporter(threading.Thread):
    """A daemon thread sending due exports (:meth:`wake` it after :func:`queue_export`) and purging expired mappings."""

    def __init__(self, core: Any, poll_seconds: float = 2.0) -> None:
        super().__init__(name="lesiondx-exporter", daemon=True)
        self.core, self.poll_seconds = core, poll_seconds
        self._wake = threading.Event()
        self._stopping = False
        self._last_purge = 0.0

    def start(self) -> None:
        """Put exports a dead process left ``sending`` back to ``pending``, then run."""
        with self.core.db.session() as s, s.begin():
            s.execute(update(Study).where(Study.export_state == "sending")
                      .values(export_state="pending", export_next_at=utcnow()))
        if self.core.settings.pacs is not None:
            resume_given_up(self.core)
        super().start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current attempt (a C-STORE in flight completes) and end the thread."""
        self._stopping = True
        self.wake()
        if self.is_alive():
            self.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        while not self._stopping:
            try:
                if time.monotonic() - self._last_purge > PURGE_EVERY_S:
                    self._last_purge = time.monotonic()
                    purge_expired(self.core.db, self.core.settings.retention_days)
                study_id = _claim(self.core)
                if study_id is not None:
                    export_once(self.core, study_id)
                    continue
            except Exception as exc:  # database briefly unavailable: try again later
                log_failure(log, "PACS exporter step failed", exc)
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
