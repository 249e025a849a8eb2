"""Results as DICOM for the PACS: moved to :mod:`lesiondx.service.pacs` (SEG + TID 1500 SR + SC in
the original study, export with retry). Kept as an import path; ``export_study`` now queues."""

from .pacs import Exporter, build_result_objects, export_detail, export_once, queue_export, send

export_study = queue_export  # the former synchronous hook's name: (core, study_id) -> queued?

__all__ = ["Exporter", "build_result_objects", "export_detail", "export_once", "export_study", "queue_export", "send"]
