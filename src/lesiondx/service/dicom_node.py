"""DICOM node: a C-STORE SCP (pynetdicom) receiving images from a modality or PACS.

* Accepts every storage SOP class with uncompressed and compressed transfer syntaxes (JPEG
  lossless 1.2.840.10008.1.2.4.70, JPEG 2000, JPEG-LS, RLE, deflate...), plus C-ECHO.
* Each instance is checked (modality US/CT, decodable pixels), de-identified (instances with an
  empty SOPInstanceUID get one assigned) and stored by hash in a ``receiving`` study keyed by its
  (remapped) StudyInstanceUID.
* A study is closed and queued when the association that sent it is released, or after
  ``study_quiet_seconds`` without new instances (aborted associations, restarts).
* Unusable instances are answered with a failure status (0xC000) and listed on the study.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from lesiondx.io import ImageReadError

from .ingest import FileError, accept_dataset

log = logging.getLogger("lesiondx.service.dicom_node")
STATUS_OK = 0x0000
STATUS_CANNOT_UNDERSTAND = 0xC000


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
        self._stop = threading.Event()
        self._closer: threading.Thread | None = None
        self._assoc_studies: dict[int, set[str]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start listening (non-blocking) and the quiet-period closer."""
        handlers = [(evt.EVT_C_STORE, self.handle_store), (evt.EVT_RELEASED, self.handle_release),
                    (evt.EVT_ABORTED, self.handle_abort)]
        host = self.core.settings.dicom_host
        self._server = self.ae.start_server((host, self.port), block=False, evt_handlers=handlers)
        self.port = int(self._server.server_address[1])
        self._closer = threading.Thread(target=self._close_loop, name="lesiondx-dicom-closer", daemon=True)
        self._closer.start()
        log.info("DICOM node %s listening on %s:%d", self.core.settings.dicom_aet, host, self.port)

    def stop(self) -> None:
        """Stop listening and close studies still receiving (they are queued, not lost)."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._closer is not None:
            self._closer.join(5)
        try:
            self.core.close_quiet_studies(force=True)
        except Exception:  # database already gone at shutdown: next start closes them
            log.exception("could not close receiving studies at shutdown")

    def _close_loop(self) -> None:
        interval = max(0.2, min(2.0, self.core.settings.study_quiet_seconds / 4))
        while not self._stop.wait(interval):
            try:
                self.core.close_quiet_studies()
            except Exception:
                log.exception("closing quiet studies failed")

    # -- event handlers (run in the association's thread) ---------------------------------------
    def handle_store(self, event: Any) -> int | tuple[int, str]:
        """Check, de-identify, store and file one instance."""
        calling = _calling_aet(event)
        name = f"{calling} message {_message_id(event)}"  # never the original UIDs (quasi-identifiers)
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
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
        except Exception:
            log.exception("storing a received instance failed")
            return 0xA700  # out of resources
        return STATUS_OK

    def _record(self, event: Any, item: Any, calling: str) -> None:
        study_id = self.core.add_dicom_instance(item, calling_aet=calling)
        if study_id is None:
            log.warning("refused an instance from %s before any study opened: %s", calling, getattr(item, "reason", ""))
        else:
            with self._lock:
                self._assoc_studies.setdefault(id(event.assoc), set()).add(study_id)

    def handle_release(self, event: Any) -> None:
        """Association released: the studies it sent are complete; queue them."""
        with self._lock:
            study_ids = self._assoc_studies.pop(id(event.assoc), set())
        if study_ids:
            for study_id in self.core.close_studies(study_ids):
                self.core.db.audit(f"dicom:{_calling_aet(event)}", "dicom_receive", study_id, "association released")

    def handle_abort(self, event: Any) -> None:
        """Association aborted: keep what arrived; the quiet-period closer queues it later."""
        with self._lock:
            self._assoc_studies.pop(id(event.assoc), None)


def _calling_aet(event: Any) -> str:
    try:
        return str(event.assoc.requestor.ae_title).strip() or "UNKNOWN"
    except Exception:
        return "UNKNOWN"


def _message_id(event: Any) -> str:
    try:
        return str(int(event.request.MessageID))
    except Exception:
        return "?"
