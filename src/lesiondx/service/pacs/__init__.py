"""Results back to the PACS, filed under the patient's original study: DICOM SEG of the lesion boxes,
a TID 1500 Measurement Report SR, Secondary Capture overlays; sent with retry and back-off.

``source`` restores original identifiers on copies of the stored images, ``content`` reads the
results, ``seg`` / ``sr`` / ``sc`` build the objects, ``build`` assembles them with deterministic
UIDs, ``export`` queues and sends them.

highdicom's own log lines name the SOP Instance UIDs of the images it is given (INFO "copy Patient-related
attributes from dataset <uid>", WARNINGs about references): here those carry the patient's ORIGINAL UIDs,
so its logger is held to ERROR whatever the service's log level (the log stays free of identifiers).
"""

import logging

logging.getLogger("highdicom").setLevel(logging.ERROR)

from .build import ResultObjects, build_result_objects
from .export import Exporter, export_detail, export_once, queue_export, send

__all__ = ["Exporter", "ResultObjects", "build_result_objects", "export_detail", "export_once", "queue_export", "send"]
