"""Service settings: arguments of ``lesiondx serve`` plus ``LESIONDX_*`` environment variables.

Environment variables (all optional):

``LESIONDX_TOKEN``
    API token; clients send ``Authorization: Bearer <token>``. Required when binding off loopback.
``LESIONDX_PACS``
    ``AET@HOST:PORT`` of the PACS that receives results as DICOM (Secondary Capture + SR).
``LESIONDX_MAX_REQUEST_MB``
    Largest accepted upload request in MB (default 200); larger requests get HTTP 413.
``LESIONDX_MAX_FILE_MB``
    Largest single file (also inside a zip) in MB (default 100); larger files are a per-file error.
``LESIONDX_STUDY_QUIET_S``
    Seconds without new DICOM instances after which a received study is closed (default 10).
``LESIONDX_PREDICTOR``
    ``module:callable`` replacing the real predictor (tests and benchmarks only; see
    :mod:`lesiondx.service.testing`). The default calls ``lesiondx.tasks.load_task(task).predict``.
``LESIONDX_DICOM_ALLOWED_AETS``
    Comma-separated calling AE titles the DICOM node accepts (default: any). The DICOM node has no
    token; set this (and a firewall) whenever it listens off loopback.
``LESIONDX_MODEL``
    Model argument passed to the task's ``predict`` (default ``"default"``, the shipped model).
``LESIONDX_WORKERS``
    Worker processes running jobs (default 2; ``0`` runs jobs in a thread of the service process, without
    isolation or limits). See :mod:`lesiondx.service.supervisor`.
``LESIONDX_JOB_TIMEOUT_S`` / ``LESIONDX_JOB_MEMORY_MB``
    Per-job wall-time limit (default 600 s) and resident-memory limit of the worker process running it
    (default 3072 MB, models included); ``0`` = no limit. A job over a limit fails with that reason.
``LESIONDX_LEASE_S``
    Seconds without a heartbeat after which a running job whose worker vanished is re-queued (default 30).
``LESIONDX_SLOW_JOB_S``
    When every worker has been on its job this long and studies wait, one extra worker process starts
    (one at most; it quits when the queue is empty; default 30, 0 = never).
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
_PACS_RE = re.compile(r"^(?P<aet>[^@\s]{1,16})@(?P<host>[^:\s]+):(?P<port>\d{1,5})$")


class SettingsError(ValueError):
    """A setting is invalid or unsafe (e.g. off-loopback without a token)."""


@dataclass(frozen=True)
class PacsTarget:
    """A remote DICOM node receiving results (C-STORE SCP)."""

    aet: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "PacsTarget":
        """Parse ``AET@HOST:PORT``."""
        match = _PACS_RE.match(text.strip())
        if not match:
            raise SettingsError(f"PACS target {text!r} is not AET@HOST:PORT")
        port = int(match["port"])
        if not 0 < port < 65536:
            raise SettingsError(f"PACS port {port} out of range")
        return cls(match["aet"], match["host"], port)

    def __str__(self) -> str:
        return f"{self.aet}@{self.host}:{self.port}"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


@dataclass(frozen=True)
class Settings:
    """Everything the service needs; build with :meth:`from_env` to read the environment."""

    storage: Path
    db_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_request_bytes: int = 200 * MB
    max_file_bytes: int = 100 * MB
    dicom_port: int | None = None
    dicom_aet: str = "LESIONDX"
    dicom_allowed_aets: tuple[str, ...] = ()
    pacs: PacsTarget | None = None
    study_quiet_seconds: float = 10.0
    worker_poll_seconds: float = 0.5
    model: str = "default"
    predictor_spec: str | None = None
    workers: int = 2
    job_timeout_s: float = 600.0
    job_memory_mb: int = 3072
    lease_seconds: float = 30.0
    slow_job_s: float = 30.0

    @classmethod
    def from_env(cls, storage: Path, **overrides: object) -> "Settings":
        """Settings from ``LESIONDX_*`` environment variables, then ``overrides`` (non-None wins)."""
        env = os.environ
        values: dict[str, object] = {"storage": Path(storage)}
        if env.get("LESIONDX_TOKEN"):
            values["token"] = env["LESIONDX_TOKEN"]
        if env.get("LESIONDX_PACS"):
            values["pacs"] = PacsTarget.parse(env["LESIONDX_PACS"])
        for key, name in (("max_request_bytes", "LESIONDX_MAX_REQUEST_MB"), ("max_file_bytes", "LESIONDX_MAX_FILE_MB")):
            if env.get(name):
                try:
                    values[key] = int(float(env[name]) * MB)
                except ValueError:
                    raise SettingsError(f"{name}={env[name]!r} is not a number") from None
        if env.get("LESIONDX_STUDY_QUIET_S"):
            values["study_quiet_seconds"] = float(env["LESIONDX_STUDY_QUIET_S"])
        if env.get("LESIONDX_PREDICTOR"):
            values["predictor_spec"] = env["LESIONDX_PREDICTOR"]
        if env.get("LESIONDX_DICOM_ALLOWED_AETS"):
            values["dicom_allowed_aets"] = tuple(a.strip() for a in env["LESIONDX_DICOM_ALLOWED_AETS"].split(",") if a.strip())
        if env.get("LESIONDX_MODEL"):
            values["model"] = env["LESIONDX_MODEL"]
        for key, name, kind in (("workers", "LESIONDX_WORKERS", int), ("job_timeout_s", "LESIONDX_JOB_TIMEOUT_S", float),
                                ("job_memory_mb", "LESIONDX_JOB_MEMORY_MB", int),
                                ("lease_seconds", "LESIONDX_LEASE_S", float),
                                ("slow_job_s", "LESIONDX_SLOW_JOB_S", float)):
            if env.get(name):
                try:
                    values[key] = kind(env[name])
                except ValueError:
                    raise SettingsError(f"{name}={env[name]!r} is not a number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values.get("pacs"), str):
            values["pacs"] = PacsTarget.parse(str(values["pacs"]))
        return cls(**values)  # type: ignore[arg-type]

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL: ``db_url`` or a SQLite file inside storage."""
        return self.db_url or f"sqlite:///{(self.storage / 'lesiondx.sqlite3').resolve()}"

    def check_safe(self) -> None:
        """Refuse unsafe or impossible configurations before anything starts."""
        if not is_loopback(self.host) and not self.token:
            raise SettingsError(
                f"refusing to listen on {self.host!r} without an API token: set LESIONDX_TOKEN "
                "(clients then send 'Authorization: Bearer <token>') or bind to 127.0.0.1")
        if self.max_request_bytes <= 0 or self.max_file_bytes <= 0:
            raise SettingsError("size limits must be positive")
        if self.dicom_port is not None and not 0 < self.dicom_port < 65536:
            raise SettingsError(f"DICOM port {self.dicom_port} out of range")
        if not 0 <= self.workers <= 64:
            raise SettingsError(f"workers must be 0-64, not {self.workers}")
        if self.job_timeout_s < 0 or self.job_memory_mb < 0 or self.slow_job_s < 0 or self.lease_seconds < 1:
            raise SettingsError("job limits must be >= 0 (0 = none) and the lease at least 1 s")
        if not 0 < len(self.dicom_aet) <= 16:
            raise SettingsError(f"DICOM AE title {self.dicom_aet!r} must be 1-16 characters")


def load_salt(storage: Path) -> str:
    """The de-identification salt: ``storage/secret.key``, created (mode 0600) on first start."""
    storage.mkdir(parents=True, exist_ok=True)
    path = storage / "secret.key"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    salt = path.read_text().strip()
    if len(salt) < 32:
        raise SettingsError(f"{path} is corrupt (salt too short); restore it from backup")
    return salt
