"""``run_server``: what ``lesiondx serve`` runs — uvicorn (HTTP) + job worker processes + DICOM node;
``run_worker``: what ``lesiondx worker`` runs — worker processes only (more machines, same database and storage).

The workers and DICOM node start and stop with the app's lifespan (see :func:`create_app`), so a
SIGINT/SIGTERM stops them cleanly; a hard kill leaves jobs ``running`` that the next start (or any other
live worker, once their lease expires) re-queues without charging them an attempt.
"""

from __future__ import annotations

import errno
import faulthandler
import logging
import signal
import socket
import threading
from pathlib import Path

from .logs import configure_logging
from .settings import Settings, SettingsError, is_loopback


def build_settings(*, host: str, port: int, db: str | None, storage: Path, dicom_port: int | None,
                   dicom_aet: str, dicom_host: str | None = None) -> Settings:
    """Settings from the ``serve`` arguments plus ``LESIONDX_*`` environment variables
    (``dicom_host`` None: ``LESIONDX_DICOM_HOST`` or 127.0.0.1)."""
    settings = Settings.from_env(Path(storage), host=host, port=port, db_url=db, dicom_port=dicom_port,
                                 dicom_aet=dicom_aet, dicom_host=dicom_host)
    settings.check_safe()
    return settings


def check_can_listen(host: str, port: int, what: str, option: str) -> None:
    """Raise :class:`SettingsError` (one line) when ``host:port`` cannot be bound: port in use, address not of this
    machine, privileged port. Checked before anything starts, so a clash is not a traceback from the app's start-up."""
    if not port:
        return  # 0: the system picks a free port
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no clash
            probe.bind(address)
    except OSError as exc:
        hint = {errno.EADDRINUSE: "another program (or another lesiondx) listens there",
                errno.EACCES: "ports below 1024 need privileges",
                errno.EADDRNOTAVAIL: "that address is not one of this machine's"}.get(exc.errno, "")
        reason = (exc.strerror or str(exc)).lower()
        raise SettingsError(f"cannot listen for {what} on {host}:{port}: {reason}"
                            f"{f' ({hint})' if hint else ''}; choose another {option}") from None


def run_server(*, host: str = "127.0.0.1", port: int = 8000, db: str | None = None,
               storage: Path = Path("lesiondx-data"), dicom_port: int | None = None,
               dicom_aet: str = "LESIONDX", dicom_host: str | None = None) -> None:
    """Serve until interrupted. Raises :class:`SettingsError` (a ``ValueError``) for unsafe settings,
    e.g. binding off loopback without ``LESIONDX_TOKEN``."""
    import uvicorn

    from .api import create_app

    configure_logging()
    _enable_faulthandler()
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # one INFO line per association otherwise
    settings = build_settings(host=host, port=port, db=db, storage=storage, dicom_port=dicom_port,
                              dicom_aet=dicom_aet, dicom_host=dicom_host)
    check_can_listen(host, port, "HTTP", "--port")
    if settings.dicom_port is not None:
        check_can_listen(settings.dicom_host, settings.dicom_port, "DICOM", "--dicom-port (or --dicom-host)")
    app = create_app(settings)
    log = logging.getLogger("lesiondx.service")
    log.info("lesiondx service on http://%s:%d (storage %s, database %s)", host, port, settings.storage,
             "SQLite in storage" if settings.db_url is None else "external")
    if settings.identities:
        log.info("API token required (Authorization: Bearer ...): %d identit(ies)", len(settings.identities))
    if not is_loopback(host) and not settings.allowed_hosts:
        log.info("answering requests addressed to localhost, an IP address or %r; set LESIONDX_ALLOWED_HOSTS for "
                 "other names (DNS-rebinding guard)", host)
    if settings.dicom_port is not None and not is_loopback(settings.dicom_host) and not settings.dicom_allowed_aets:
        log.warning("DICOM node on %s accepts any calling AE title: set LESIONDX_DICOM_ALLOWED_AETS and a firewall",
                    settings.dicom_host)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10,
                limit_concurrency=200, server_header=False)


def _enable_faulthandler() -> None:
    """A fatal signal (SIGBUS from a storage turned read-only under SQLite) leaves the Python stacks on stderr; skipped
    when stderr is no file (an embedding app or a test runner capturing it), where it would fail on ``fileno``."""
    try:
        faulthandler.enable()
    except (AttributeError, ValueError, OSError):  # io.UnsupportedOperation is a ValueError and an OSError
        pass


def run_worker(*, db: str | None = None, storage: Path = Path("lesiondx-data"), workers: int | None = None) -> None:
    """Run job worker processes without the web server until SIGINT/SIGTERM (then running jobs get 10 s to
    finish; unfinished ones go back in the queue). ``storage`` must be the service's (shared) folder."""
    from .core import ServiceCore

    configure_logging()
    _enable_faulthandler()
    if not (Path(storage) / "secret.key").is_file():
        raise SettingsError(f"{storage} is not a lesiondx storage folder (no secret.key): point --storage at the "
                            "folder the service uses (shared storage when on another machine)")
    settings = Settings.from_env(Path(storage), db_url=db, workers=workers)
    if settings.workers < 1:
        raise SettingsError("lesiondx worker needs at least one worker process (--concurrency 1 or more)")
    core = ServiceCore(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    core.worker.start()
    logging.getLogger("lesiondx.service").info("lesiondx worker: %d process(es), storage %s, database %s",
                                               settings.workers, settings.storage,
                                               "SQLite in storage" if settings.db_url is None else "external")
    stop.wait()
    core.worker.stop(settings.stop_grace_s)
    core.db.dispose()


__all__ = ["SettingsError", "build_settings", "check_can_listen", "run_server", "run_worker"]
