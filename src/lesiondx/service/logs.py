"""Service logging set-up: ``LESIONDX_LOG_LEVEL`` (default INFO) and ``LESIONDX_LOG_FORMAT`` — ``text`` (default,
one readable line per event) or ``json`` (one JSON object per line: ``time`` ISO 8601 UTC, ``level``, ``logger``,
``process``, ``message``, ``exception`` when there is one) for a log collector. Lines go to stderr; rotation is the
job of journald / the container runtime / logrotate. The service logs ids and counts, never names or PHI."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone

from .settings import SettingsError

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "process": record.process,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging() -> None:
    """Configure the root logger from the environment (once per process; :class:`SettingsError` naming the variable
    for an unknown format)."""
    style = (os.environ.get("LESIONDX_LOG_FORMAT") or "text").strip().lower()
    if style not in ("text", "json"):
        raise SettingsError(f"LESIONDX_LOG_FORMAT={style!r} is not text or json")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if style == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=os.environ.get("LESIONDX_LOG_LEVEL", "INFO"), handlers=[handler])


__all__ = ["JsonFormatter", "TEXT_FORMAT", "configure_logging"]
