"""DICOM node: a C-STORE SCP (pynetdicom) receiving images from a modality or PACS.

* Accepts every storage SOP class with uncompressed and compressed transfer syntaxes (JPEG
  lossless 1.2.840.10008.1.2.4.70, JPEG 2000, JPEG-LS, RLE, deflate...), plus C-ECHO.
* Each instance is checked (modality US/CT, decodable pixels), de-identified (instances with an
  empty SOPInstanceUID get one assigned) and filed by :meth:`ServiceCore.add_dicom_instance` into the
  study with its (remapped) StudyInstanceUID, keyed by its (remapped) SOP Instance UID: a copy of an
  instance already held is dropped and counted, a late instance reopens a closed study.
* A study is closed and queued ``study_release_grace_s`` (default 2 s) after the last open association that sent
  it is released, unless another association sent it meanwhile (a sender may use several associations at once;
  Orthanc opens a new one for each SOP class / transfer syntax not yet negotiated; the grace also waits while a new
  association stores its first instance), or after
  ``study_quiet_seconds`` without new instances (aborted associations, restarts: the service's
  closer thread, see :meth:`ServiceCore.start`). Stopping the node never closes a study.
* Objects of a forwarded study that are never analysed are answered with success and dropped (not stored):
  non-image objects (dose SR, presentation states, key objects, PDFs: no pixel data, a Modality other
  than CT/US), images of other modalities (the PET of a PET/CT, an MR, another vendor's SEG), objects of private SOP classes (Siemens CSA Non-Image, vendor 3D models...: their
  presentation contexts are accepted too, else Orthanc's store job of the whole study fails), CT localizers (ImageType LOCALIZER) and CT secondary captures (dose screens, often with
  the patient's name burned in). A failure status for them made a PACS forwarding whole studies mark each
  transfer failed and retry it; stored, they became extra "series" a one-series task refuses. Each
  association's ignored objects are counted in one ``dicom_ignored`` audit entry (no identifiers).
* A study re-sent with only instances already held (a PACS re-forwarding it) is not analysed again; each such
  association leaves one ``dicom_resent`` audit entry on the study (copies dropped, no identifiers).
* Unusable instances (no Modality, undecodable, cut short: pydicom reads a truncated transfer as an empty
  dataset) are answered with a failure status (0xC000) and listed on the study their association sends; each
  association's refusals are also in one ``dicom_refused`` audit entry (counts and reasons, no identifiers) on
  that study, or on none when the association never sent a usable instance.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from pydicom import dcmread
from pydicom.uid import UID
from pynetdicom import _config as pynetdicom_config
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, build_context, evt
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import Verification, register_uid, uid_to_service_class

from lesiondx.io import ImageReadError
from lesiondx.io.series import is_secondary_capture

from .ingest import FileError, accept_dataset
from .pacs.content import AI_MARK
from .storage import storage_problem

log = logging.getLogger("lesiondx.service.dicom_node")
STATUS_OK = 0x0000
STATUS_CANNOT_UNDERSTAND = 0xC000
DEFER_BYTES = 1 << 20  # element values over 1 MiB (pixel data) stay in the temporary file until read
REJECTED_REPORT_S = 60.0  # a rejected association is logged and audited at most once a minute per AE title and address


class DicomNode:
    """The SCP bound to ``settings.dicom_port`` on ``settings.dicom_host`` (default loopback, whatever HTTP
    binds to), plus a quiet-period closer thread."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.port: int = core.settings.dicom_port
        self.ae = AE(ae_title=core.settings.dicom_aet)
        self.ae.maximum_pdu_size = 0
        self.ae.network_timeout = 60
        for context in AllStoragePresentationContexts:
            self.ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        self.ae.add_supported_context(Verification)
        if core.settings.dicom_allowed_aets:
            self.ae.require_calling_aet = list(core.settings.dicom_allowed_aets)
        self._server: Any = None
        self._assoc_studies: dict[int, list[str]] = {}  # association → studies it sent (in order)
        self._assoc_refused: dict[int, list[FileError]] = {}  # refusals not yet filed on a study
        self._assoc_refusals: dict[int, list[str]] = {}  # every refusal's reason (one audit entry at the end)
        self._assoc_ignored: dict[int, list[str]] = {}  # why each not-analysed object was dropped
        self._assoc_duplicates: dict[int, Counter[str]] = {}  # association → study → copies of held instances dropped
        self._assoc_new: dict[int, set[str]] = {}  # association → studies it sent at least one new instance of
        self._storing_first: dict[int, int] = {}  # association → C-STOREs in progress before it filed a study
        self._assoc_count: dict[int, int] = {}  # association → C-STOREs it has sent (names a refused one)
        self._rejected_reported: dict[tuple[str, str, str], float] = {}  # (AE title, address, why) → monotonic s
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start listening (non-blocking). Instances are received to temporary files (pynetdicom's process-wide
        ``STORE_RECV_CHUNKED_DATASET``), so one too large for the pixel limit is refused from its header without
        ever being held whole in memory."""
        pynetdicom_config.STORE_RECV_CHUNKED_DATASET = True
        served = logging.getLogger("pynetdicom.association")
        if not any(isinstance(f, RequestNotServed) for f in served.filters):
            served.addFilter(RequestNotServed())
        handlers = [(evt.EVT_REQUESTED, accept_private_storage), (evt.EVT_C_STORE, self.handle_store),
                    (evt.EVT_RELEASED, self.handle_release), (evt.EVT_ABORTED, self.handle_abort),
                    (evt.EVT_REJECTED, self.handle_rejected)]
        host = self.core.settings.dicom_host
        self._server = self.ae.start_server((host, self.port), block=False, evt_handlers=handlers)
        self.port = int(self._server.server_address[1])
        log.info("DICOM node %s listening on %s:%d", self.core.settings.dicom_aet, host, self.port)

    def stop(self) -> None:
        """Stop listening. Studies still receiving stay ``receiving``: a series cut off by a shutdown is not
        complete; the next start gives them a new quiet period (the sender may resend)."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # -- event handlers (run in the association's thread) ---------------------------------------
    def handle_store(self, event: Any) -> int | tuple[int, str]:
        """Check, de-identify, store and file one instance."""
        key = id(event.assoc)
        with self._lock:
            first = key not in self._assoc_studies
            if first:
                self._storing_first[key] = self._storing_first.get(key, 0) + 1
            number = self._assoc_count[key] = self._assoc_count.get(key, 0) + 1
        try:
            return self._store(event, number)
        finally:
            if first:
                with self._lock:
                    left = self._storing_first.pop(key, 1) - 1
                    if left > 0:
                        self._storing_first[key] = left

    def _store(self, event: Any, number: int) -> int | tuple[int, str]:
        """``number``: the instance's place in its association (1 = the first C-STORE), which names it when refused
        (SCUs such as pynetdicom send every C-STORE as message 1); never by its original UIDs (quasi-identifiers)."""
        calling = _calling_aet(event)
        name = f"{calling} instance {number} (message {_message_id(event)})"
        try:
            ds = _received(event)
            if is_own_result(ds):  # a PACS forwarding the whole study sends our SEG/SR/SC back: accept, ignore
                log.info("ignored one of lesiondx's own result objects sent back by %s", calling)
                return STATUS_OK
            ignored = not_analysed(ds, _affected_class(event))
            if ignored:
                with self._lock:
                    self._assoc_ignored.setdefault(id(event.assoc), []).append(ignored)
                return STATUS_OK
            if not str(ds.get("SOPInstanceUID", "") or "").strip():
                ds.SOPInstanceUID = ""  # deidentify() assigns a deterministic UID
            item = accept_dataset(name, ds, self.core.salt, self.core.ingest_policy)
        except ImageReadError as exc:
            self._record(event, FileError(name, exc.reason), calling)
            return STATUS_CANNOT_UNDERSTAND
        except Exception as exc:  # undecodable dataset, missing decoder...
            self._record(event, FileError(name, f"cannot read instance ({type(exc).__name__}: {exc})"), calling)
            return STATUS_CANNOT_UNDERSTAND
        try:
            self._record(event, item, calling)
        except Exception as exc:
            reason = storage_problem(exc)
            if reason is None:
                log.exception("storing a received instance failed")
            else:  # one line per instance, no traceback: the sender is told 0xA700 and may resend later
                log.error("refused an instance from %s (answered 0xA700 out of resources): %s", calling, reason)
            return 0xA700  # out of resources
        return STATUS_OK

    def _record(self, event: Any, item: Any, calling: str) -> None:
        key = id(event.assoc)
        with self._lock:
            current = (self._assoc_studies.get(key) or [None])[-1]
        if isinstance(item, FileError):
            with self._lock:
                self._assoc_refusals.setdefault(key, []).append(item.reason)
            if self.core.add_dicom_instance(item, calling_aet=calling, study_id=current) is None:
                with self._lock:  # no study yet: file it on the first one this association sends, or audit it
                    self._assoc_refused.setdefault(key, []).append(item)
            return
        duplicates: Counter[str] = Counter()
        study_id = self.core.add_dicom_instance(item, calling_aet=calling, duplicates=duplicates)
        if study_id is None:
            return
        with self._lock:
            if duplicates:
                self._assoc_duplicates.setdefault(key, Counter()).update(duplicates)
            else:
                self._assoc_new.setdefault(key, set()).add(study_id)
            studies = self._assoc_studies.setdefault(key, [])
            if study_id not in studies:
                studies.append(study_id)
            pending = self._assoc_refused.pop(key, [])
        for refused in pending:
            self.core.add_dicom_instance(refused, calling_aet=calling, study_id=study_id)

    def _report_refused(self, event: Any, study_id: str | None) -> None:
        """The association's refused instances: one ``dicom_refused`` audit entry (counts and reasons, no identifiers)
        on ``study_id``, the last study it sent (they are listed on it too), or on none when it sent no usable
        instance."""
        with self._lock:
            reasons = self._assoc_refusals.pop(id(event.assoc), [])
        if not reasons:
            return
        counts = Counter(reason.split(" (")[0][:80] for reason in reasons)
        where = "" if study_id else ", no study opened"
        detail = f"{len(reasons)} instance(s) refused{where}: " + "; ".join(
            f"{reason} ×{n}" for reason, n in counts.most_common())
        calling = _calling_aet(event)
        log.warning("refused %d instance(s) from %s%s (%s)", len(reasons), calling,
                    " before any study opened" if not study_id else "", detail)
        try:
            self.core.db.audit(f"dicom:{calling}", "dicom_refused", study_id, detail)
        except Exception:
            log.exception("could not record refused instances in the audit log")

    def _report_ignored(self, event: Any) -> None:
        """One audit entry per association for the objects it sent that are not analysed (counts by kind)."""
        with self._lock:
            ignored = self._assoc_ignored.pop(id(event.assoc), [])
        if not ignored:
            return
        detail = f"{len(ignored)} instance(s) accepted and not analysed: " + "; ".join(
            f"{reason} ×{n}" for reason, n in Counter(ignored).most_common())
        calling = _calling_aet(event)
        log.info("ignored %d instance(s) from %s that are not analysed (%s)", len(ignored), calling, detail)
        try:
            self.core.db.audit(f"dicom:{calling}", "dicom_ignored", None, detail)
        except Exception:
            log.exception("could not record ignored instances in the audit log")

    def _report_resent(self, event: Any) -> None:
        """One ``dicom_resent`` audit entry per study this association sent only copies of instances already held
        (a PACS re-forwarding a study): counts, no identifiers; nothing of it is analysed again."""
        with self._lock:
            duplicates = self._assoc_duplicates.pop(id(event.assoc), Counter())
            new = self._assoc_new.pop(id(event.assoc), set())
        calling = _calling_aet(event)
        for study_id, dropped in duplicates.items():
            if study_id not in new:
                try:
                    self.core.report_resend(study_id, calling, dropped)
                except Exception:
                    log.exception("could not record a re-sent study in the audit log")

    def handle_release(self, event: Any) -> None:
        """Association released: the studies it sent are complete, unless another open association is still
        sending to them; queue them."""
        with self._lock:
            sent = self._assoc_studies.pop(id(event.assoc), [])
            self._assoc_refused.pop(id(event.assoc), None)  # never filed: counted in the audit entry below
            self._assoc_count.pop(id(event.assoc), None)
            # another association still sending the same study (senders use several at once): its release closes it
            study_ids = set(sent) - {study for studies in self._assoc_studies.values() for study in studies}
        self._report_refused(event, sent[-1] if sent else None)
        self._report_ignored(event)
        self._report_resent(event)
        if study_ids:  # closed after a short grace: Orthanc sends a study mixing SOP classes in several associations
            self.core.close_released(study_ids, calling_aet=_calling_aet(event), held=self._held_studies,
                                     storing=self._storing)

    def _storing(self) -> bool:
        """True while an association that has filed no study yet is storing an instance (its study is unknown)."""
        with self._lock:
            return bool(self._storing_first)

    def _held_studies(self) -> set[str]:
        """The studies an open association has sent (its release closes them)."""
        with self._lock:
            return {study for studies in self._assoc_studies.values() for study in studies}

    def handle_rejected(self, event: Any) -> None:
        """Association rejected (a calling AE title not allowed, too many associations at once): one warning line and
        one ``dicom_rejected`` audit entry naming the AE title, address and reason, at most once a minute for each
        (a sender retrying every few seconds would flood both). pynetdicom says it only at INFO, muted."""
        calling = _calling_aet(event)
        try:
            address = str(event.assoc.requestor.address)
        except Exception:
            address = "?"
        allowed = self.core.settings.dicom_allowed_aets
        if allowed and calling not in allowed:
            why = "calling AE title not in LESIONDX_DICOM_ALLOWED_AETS"
            other_case = [aet for aet in allowed if aet.upper() == calling.upper()]
            if other_case:  # AE titles are case-sensitive (PS3.5 AE): 'orthanc' does not allow Orthanc's 'ORTHANC'
                why += f" (it lists {other_case[0]!r}: AE titles are case-sensitive)"
        else:
            why = f"more than {self.ae.maximum_associations} associations at once (answered: try later)"
        now, key = time.monotonic(), (calling, address, why)
        with self._lock:
            if now - self._rejected_reported.get(key, -REJECTED_REPORT_S) < REJECTED_REPORT_S:
                return
            self._rejected_reported = {k: t for k, t in self._rejected_reported.items() if now - t < REJECTED_REPORT_S}
            self._rejected_reported[key] = now
        log.warning("rejected an association from AE title %r at %s: %s", calling, address, why)
        try:
            self.core.db.audit(f"dicom:{calling}", "dicom_rejected", None, why, address)
        except Exception:
            log.exception("could not record a rejected association in the audit log")

    def handle_abort(self, event: Any) -> None:
        """Association aborted: keep what arrived; the quiet-period closer queues it later."""
        with self._lock:
            sent = self._assoc_studies.pop(id(event.assoc), [])
            self._assoc_refused.pop(id(event.assoc), None)  # never filed: counted in the audit entry below
            self._assoc_count.pop(id(event.assoc), None)
        self._report_refused(event, sent[-1] if sent else None)
        self._report_ignored(event)
        self._report_resent(event)


class RequestNotServed(logging.Filter):
    """pynetdicom logs a request its service class cannot serve (a C-FIND / C-MOVE / C-GET sent on a storage
    presentation context) with a traceback, then aborts the association: one warning line instead, saying why."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.funcName == "_serve_request":
            reason = str(record.exc_info[1])[:200]
            record.msg, record.args = ("refused a DICOM request and aborted its association: this node is a storage "
                                       "SCP only (C-STORE, C-ECHO; no C-FIND / C-MOVE / C-GET): %s", (reason,))
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _received(event: Any) -> Any:
    """The received dataset: read from pynetdicom's temporary file with large values (pixel data) deferred, read only
    when decoded (the file lives until the handler returns), else decoded from memory."""
    try:
        path = event.dataset_path
    except AttributeError:
        path = None
    if path is not None and not isinstance(path, tuple):
        ds = dcmread(path, defer_size=DEFER_BYTES, force=True)
    else:
        ds = event.dataset
    ds.file_meta = event.file_meta
    return ds


def _calling_aet(event: Any) -> str:
    try:
        return str(event.assoc.requestor.ae_title).strip() or "UNKNOWN"
    except Exception:
        return "UNKNOWN"


def _affected_class(event: Any) -> str:
    """The C-STORE request's Affected SOP Class UID ('' when it cannot be read)."""
    try:
        return str(event.request.AffectedSOPClassUID or "").strip()
    except Exception:
        return ""


def _message_id(event: Any) -> str:
    try:
        return str(int(event.request.MessageID))
    except Exception:
        return "?"


def is_own_result(ds: Any) -> bool:
    """True for the SEG / SR / SC objects lesiondx itself sent to the PACS (their SeriesDescription starts
    with the AI mark): re-reading them would make a study of AI overlays."""
    return str(ds.get("SeriesDescription", "") or "").startswith(AI_MARK)


_REGISTER_LOCK = threading.Lock()
_REGISTERED: set[str] = set()
MAX_REGISTERED = 500  # private SOP classes registered per process (vendors use a few dozen)


def accept_private_storage(event: Any) -> None:
    """Before negotiation: also support the private and unknown SOP classes the sender proposes (a PACS forwarding
    a study proposes every class it holds; one it cannot use fails its whole transfer). Received, they are ignored
    (:func:`not_analysed`)."""
    try:
        allowed = [str(aet).strip() for aet in event.assoc.ae.require_calling_aet]
        primitive = event.assoc.requestor.primitive
        if allowed and str(primitive.calling_ae_title).strip() not in allowed:
            return  # to be rejected: it registers nothing
        acceptor = event.assoc.acceptor
        known = {str(context.abstract_syntax) for context in acceptor.supported_contexts}
        extra = []
        for context in primitive.presentation_context_definition_list:
            uid = UID(str(context.abstract_syntax))
            if str(uid) not in known and (uid.is_private or not uid.keyword) and uid.is_valid:
                with _REGISTER_LOCK:  # pynetdicom dispatches a C-STORE by the SOP class's registered service
                    if uid_to_service_class(uid) is not StorageServiceClass:
                        if len(_REGISTERED) >= MAX_REGISTERED:
                            continue  # bounded: pynetdicom keeps every registered class for the process's life
                        register_uid(uid, "LesiondxStorage_" + str(uid).replace(".", "_"), StorageServiceClass)
                        _REGISTERED.add(str(uid))
                extra.append(build_context(uid, ALL_TRANSFER_SYNTAXES))
                known.add(str(uid))
        if extra:
            acceptor.supported_contexts = [*acceptor.supported_contexts, *extra]
    except Exception:  # never stop an association over this: it is then negotiated as before
        log.exception("could not add the proposed private SOP classes")


NON_IMAGE_CLASSES = ("1.2.840.10008.5.1.4.1.1.88.",  # structured reports: dose SR, key objects, CAD SR...
                     "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF / CDA / STL...
                     "1.2.840.10008.5.1.4.1.1.11.")  # presentation states


def not_analysed(ds: Any, command_class: str = "") -> str:
    """Why ``ds`` is part of a study but never analysed ('' when it may be): a private SOP class (the dataset's, else
    ``command_class``, the C-STORE's Affected SOP Class), a non-image object, an image of another modality than
    CT/US (PT, MR, SEG...), an object of a non-image SOP class (:data:`NON_IMAGE_CLASSES`) whatever its Modality (a
    dose SR tagged CT, or with none), a CT localizer, a CT secondary capture (dose screen). An image without a Modality
    stays a refusal, and so does an instance cut short (pydicom reads a truncated one as an empty dataset)."""
    sop_class = str(ds.get("SOPClassUID", "") or "").strip() or command_class
    if sop_class and UID(sop_class).is_private:
        return "private SOP class (vendor object)"
    modality = str(ds.get("Modality", "") or "").upper()
    has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    if modality and modality not in ("CT", "US"):  # a PET of a PET/CT, an MR, another vendor's SEG...
        return f"{'image of another modality' if has_pixels else 'non-image object'} ({modality[:16]})"
    if sop_class.startswith(NON_IMAGE_CLASSES):  # a dose SR tagged Modality CT, or with no Modality at all
        return f"non-image object ({UID(sop_class).name.removesuffix(' Storage')[:40]})"
    if modality != "CT":
        return ""
    value = ds.get("ImageType") or []
    image_type = [str(v).strip().upper() for v in ([value] if isinstance(value, str) else value)]
    if "LOCALIZER" in image_type[2:3]:
        return "CT localizer"
    if is_secondary_capture(ds.get("SOPClassUID", "")):
        return "CT secondary capture (e.g. dose screen)"
    return ""
