"""Results back to the PACS, filed under the patient's original study: DICOM SEG of the lesion boxes,
a TID 1500 Measurement Report SR, Secondary Capture overlays; sent with retry and back-off.

``source`` restores original identifiers on copies of the stored images, ``content`` reads the
results, ``seg`` / ``sr`` / ``sc`` build the objects, ``build`` assembles them with deterministic
UIDs, ``export`` queues and sends them.
"""

from .build import ResultObjects, build_result_objects
from .export import Exporter, export_detail, export_once, queue_export, send

__all__ = ["Exporter", "ResultObjects", "build_result_objects", "export_detail", "export_once", "queue_export", "send"]
