"""The second-opinion service: web UI, REST API, durable job queue, DICOM node and PACS export.

Entry points:

* :func:`lesiondx.service.server.run_server` — what ``lesiondx serve`` calls;
* :func:`lesiondx.service.api.create_app` — the FastAPI app (tests inject a predictor here);
* :class:`lesiondx.service.settings.Settings` — every knob, from arguments and ``LESIONDX_*`` env vars.
"""

from __future__ import annotations
