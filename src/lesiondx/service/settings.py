"""Service settings: arguments of ``lesiondx serve`` plus ``LESIONDX_*`` environment variables.

Environment variables (all optional):

``LESIONDX_TOKEN``
    Shared API token (at least 16 characters); clients send ``Authorization: Bearer <token>``. A token
    (this or per-user ones) is required when binding off loopback. Its audit identity is ``api-token``.
``LESIONDX_TOKENS`` / ``LESIONDX_TOKENS_FILE``
    Per-user tokens: ``user1:token1,user2:token2``, or a file with one ``user: token`` line each (``#``
    comments). The audit log records the user a token belongs to, never a name the client declares.
``LESIONDX_READER_TOKENS`` / ``LESIONDX_READER_TOKENS_FILE``
    Reader-study tokens, same form (``reader1:token1,...``). Such a token opens only the reader-study cases
    handed out to that reader (``/reader``, ``/api/reader/next``, the case's images, ``/api/reader/reads``), answers
    only as that reader, and sees AI results only in the with-AI arm; every other route answers 403. Needs
    ``LESIONDX_TOKEN(S)`` for the staff (otherwise the rest of the API needs no token and readers are not blinded).
``LESIONDX_ALLOWED_HOSTS``
    Comma-separated host names the service answers to (``Host`` header), besides ``localhost``, IP
    addresses and the ``--host`` name; ``*.example.org`` matches subdomains, ``*`` everything. Other
    names get HTTP 400: a DNS-rebinding page cannot reach the API through its own name.
``LESIONDX_DICOM_HOST``
    Address the DICOM node binds to (default ``127.0.0.1``, also when HTTP listens elsewhere).
``LESIONDX_PACS``
    ``AET@HOST:PORT`` of the PACS that receives results as DICOM (SEG + TID 1500 SR + Secondary Capture).
``LESIONDX_MAX_REQUEST_MB``
    Largest accepted upload request in MB (default 200); larger requests get HTTP 413.
``LESIONDX_MAX_FILE_MB``
    Largest single file (also inside a zip) in MB (default 100); larger files are a per-file error.
``LESIONDX_MAX_UPLOADS`` / ``LESIONDX_UPLOAD_WAIT_S`` / ``LESIONDX_UPLOAD_IDLE_S``
    Uploads read and checked at once (default 4; each holds its files in memory), seconds a further upload
    waits for a place before HTTP 503 with ``Retry-After`` (default 30), and seconds without any bytes after
    which an upload is dropped with HTTP 408 (default 60). See :mod:`lesiondx.service.admission`.
``LESIONDX_STUDY_QUIET_S``
    Seconds without new DICOM instances after which a received study is closed (default 10).
``LESIONDX_STUDY_RELEASE_GRACE_S``
    Seconds a DICOM study waits, after the last association sending it is released, for another association
    carrying it (Orthanc opens one per new SOP class / transfer syntax) before it is closed (default 2; 0 closes
    at once).
``LESIONDX_PREDICTOR``
    ``module:callable`` replacing the real predictor (tests and benchmarks only; see
    :mod:`lesiondx.service.testing`). The default calls ``lesiondx.tasks.load_task(task).predict``.
``LESIONDX_DICOM_ALLOWED_AETS``
    Comma-separated calling AE titles the DICOM node accepts (default: any). The DICOM node has no
    token; set this (and a firewall) whenever it listens off loopback.
``LESIONDX_MODEL``
    Model argument passed to the task's ``predict`` (default ``"default"``, the shipped model).
``LESIONDX_MAX_PIXELS``
    Largest image in pixels (rows × columns × frames, read from the header before decoding; default 50e6).
``LESIONDX_ZIP_MAX_MEMBERS`` / ``LESIONDX_ZIP_MAX_TOTAL_MB`` / ``LESIONDX_ZIP_MAX_RATIO``
    Zip limits enforced while inflating: files per archive (5000), uncompressed MB per archive (400),
    uncompressed/compressed ratio of a member (100).
``LESIONDX_DEID_DATES``
    PS3.15 Retain Longitudinal Temporal Information: ``remove`` (default), ``shift`` (Modified Dates,
    salted per-patient offset) or ``full`` (Full Dates).
``LESIONDX_DEID_PATIENT_CHARACTERISTICS``
    ``1`` keeps age, sex, size and weight (Retain Patient Characteristics Option; default removed).
``LESIONDX_REFUSE_BURNED_IN``
    ``1`` refuses images with BurnedInAnnotation YES and those of modalities that usually carry burned-in
    text (US, OT/SC, PNG/JPG) unless marked NO; default: accepted with a warning on the study.
``LESIONDX_RETENTION_DAYS``
    Days after which a study's original ↔ pseudonym mapping is deleted (default 30; 0 = keep).
    Its results can no longer be sent to the PACS after that.
``LESIONDX_STUDY_RETENTION_DAYS``
    Days after which a finished study is deleted with its files and results (default 0 = kept until deleted
    with ``DELETE /api/studies/{id}``). Studies still running, being sent to the PACS or in the reader study are
    kept. Housekeeping runs at start and hourly; it also removes stored files no study refers to (a kill -9
    mid-upload leaves such files) and logs one line with what it removed. See :mod:`lesiondx.service.retention`.
``LESIONDX_LOG_LEVEL`` / ``LESIONDX_LOG_FORMAT``
    Log level (default INFO) and ``text`` (default) or ``json`` (one object per line, for a log collector); see
    :mod:`lesiondx.service.logs`.
``LESIONDX_EXPORT_RETRY_S``
    Comma-separated waits in seconds between PACS export attempts (default ``30,120,600,1800,3600``;
    the last wait repeats).
``LESIONDX_EXPORT_MAX_ATTEMPTS``
    PACS export attempts before a study's export stays ``failed`` (default 8).
``LESIONDX_WORKERS``
    Worker processes running jobs (default 2; ``0`` runs jobs in a thread of the service process, without
    isolation or limits). See :mod:`lesiondx.service.supervisor`.
``LESIONDX_JOB_TIMEOUT_S`` / ``LESIONDX_JOB_MEMORY_MB``
    Per-job wall-time limit (default 600 s) and resident-memory limit of the worker process running it
    (default 3072 MB, models included); ``0`` = no limit. A job over a limit fails with that reason.
``LESIONDX_STOP_GRACE_S``
    Seconds running jobs get to finish when the service (or ``lesiondx worker``) stops (default 10); a job still
    running then goes back in the queue and is re-run from the start. A ct-liver study can take minutes: raise it
    (and systemd's ``TimeoutStopSec``) to let such jobs finish.
``LESIONDX_LEASE_S``
    Seconds without a heartbeat after which a running job whose worker vanished is re-queued (default 30).
``LESIONDX_SLOW_JOB_S``
    When every worker has been on its job this long and studies wait, one extra worker process starts
    (one at most; it quits when the queue is empty; default 30, 0 = never).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
MIN_TOKEN_LENGTH = 16
SHARED_TOKEN_USER = "api-token"
_USER_RE = re.compile(r"^[A-Za-z0-9._@-]{1,48}$")
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


def parse_user_tokens(text: str, source: str, *, lines: bool = False) -> list[tuple[str, str]]:
    """``user:token`` pairs separated by commas (or one per line with ``lines``; ``#`` starts a comment).
    Errors name ``source`` and the entry, never the token."""
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines() if lines else text.split(","), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        user, sep, token = line.partition(":")
        user, token = user.strip(), token.strip()
        if not sep or not token or not _USER_RE.match(user):
            where = f"{'line' if lines else 'entry'} {number}"
            raise SettingsError(f"{source}, {where}: expected 'user: token' with a user name of letters, digits "
                                "or ._@- (at most 48)")
        pairs.append((user, token))
    return pairs


def read_tokens_file(path: Path, variable: str = "LESIONDX_TOKENS_FILE") -> list[tuple[str, str]]:
    """Per-user tokens from a file of ``user: token`` lines (see :func:`parse_user_tokens`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{variable} {path}: cannot read ({type(exc).__name__})") from None
    return parse_user_tokens(text, f"{variable} {path}", lines=True)


def _tokens_from_env(env: Mapping[str, str], variable: str) -> list[tuple[str, str]]:
    """``user:token`` pairs from ``variable`` and from the file named by ``variable + "_FILE"``."""
    pairs = parse_user_tokens(env.get(variable, ""), variable)
    if env.get(f"{variable}_FILE"):
        pairs += read_tokens_file(Path(env[f"{variable}_FILE"]), f"{variable}_FILE")
    return pairs


@dataclass(frozen=True)
class Settings:
    """Everything the service needs; build with :meth:`from_env` to read the environment."""

    storage: Path
    db_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    user_tokens: tuple[tuple[str, str], ...] = ()
    reader_tokens: tuple[tuple[str, str], ...] = ()  # (reader, token): reader-study cases only
    allowed_hosts: tuple[str, ...] = ()
    max_request_bytes: int = 200 * MB
    max_file_bytes: int = 100 * MB
    dicom_port: int | None = None
    dicom_host: str = "127.0.0.1"
    dicom_aet: str = "LESIONDX"
    dicom_allowed_aets: tuple[str, ...] = ()
    pacs: PacsTarget | None = None
    study_quiet_seconds: float = 10.0
    study_release_grace_s: float = 2.0
    worker_poll_seconds: float = 0.5
    model: str = "default"
    predictor_spec: str | None = None
    max_pixels: int = 50_000_000
    zip_max_members: int = 5000
    zip_max_total_bytes: int = 400 * MB
    zip_max_ratio: float = 100.0
    deid_dates: str = "remove"
    deid_patient_characteristics: bool = False
    refuse_burned_in: bool = False
    retention_days: float = 30.0
    study_retention_days: float = 0.0
    export_retry_seconds: tuple[float, ...] = (30.0, 120.0, 600.0, 1800.0, 3600.0)
    export_max_attempts: int = 8
    workers: int = 2
    job_timeout_s: float = 600.0
    job_memory_mb: int = 3072
    lease_seconds: float = 30.0
    slow_job_s: float = 30.0
    max_uploads: int = 4
    upload_wait_s: float = 30.0
    upload_idle_s: float = 60.0
    stop_grace_s: float = 10.0

    @classmethod
    def from_env(cls, storage: Path, **overrides: object) -> "Settings":
        """Settings from ``LESIONDX_*`` environment variables, then ``overrides`` (non-None wins)."""
        env = os.environ
        values: dict[str, object] = {"storage": Path(storage)}
        if env.get("LESIONDX_TOKEN"):
            values["token"] = env["LESIONDX_TOKEN"]
        users = _tokens_from_env(env, "LESIONDX_TOKENS")
        if users:
            values["user_tokens"] = tuple(users)
        readers = _tokens_from_env(env, "LESIONDX_READER_TOKENS")
        if readers:
            values["reader_tokens"] = tuple(readers)
        if env.get("LESIONDX_ALLOWED_HOSTS"):
            hosts = env["LESIONDX_ALLOWED_HOSTS"].split(",")
            values["allowed_hosts"] = tuple(h.strip().lower() for h in hosts if h.strip())
        if env.get("LESIONDX_DICOM_HOST"):
            values["dicom_host"] = env["LESIONDX_DICOM_HOST"]
        if env.get("LESIONDX_PACS"):
            values["pacs"] = PacsTarget.parse(env["LESIONDX_PACS"])
        if env.get("LESIONDX_PREDICTOR"):
            values["predictor_spec"] = env["LESIONDX_PREDICTOR"]
        if env.get("LESIONDX_DICOM_ALLOWED_AETS"):
            values["dicom_allowed_aets"] = tuple(a.strip() for a in env["LESIONDX_DICOM_ALLOWED_AETS"].split(",") if a.strip())
        if env.get("LESIONDX_MODEL"):
            values["model"] = env["LESIONDX_MODEL"]
        values.update(_deid_from_env(env))
        values.update(_export_env(env))
        for key, name, kind, minimum, scale in _NUMBERS:
            number = env_number(env, name, kind, minimum=minimum, scale=scale)
            if number is not None:
                values[key] = number
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values.get("pacs"), str):
            values["pacs"] = PacsTarget.parse(str(values["pacs"]))
        return cls(**values)  # type: ignore[arg-type]

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL: ``db_url`` or a SQLite file inside storage."""
        return self.db_url or f"sqlite:///{(self.storage / 'lesiondx.sqlite3').resolve()}"

    @property
    def identities(self) -> dict[str, str]:
        """Token → the user it authenticates (``api-token`` for ``LESIONDX_TOKEN``); empty: no token needed."""
        found = {token: user for user, token in self.user_tokens}
        if self.token:
            found[self.token] = SHARED_TOKEN_USER
        return found

    @property
    def reader_identities(self) -> dict[str, str]:
        """Reader-study token → the reader it authenticates (these tokens open nothing else)."""
        return {token: reader for reader, token in self.reader_tokens}

    def check_safe(self) -> None:
        """Refuse unsafe or impossible configurations before anything starts."""
        if not is_loopback(self.host) and not self.identities:
            raise SettingsError(
                f"refusing to listen on {self.host!r} without an API token: set LESIONDX_TOKEN or "
                "LESIONDX_TOKENS (clients then send 'Authorization: Bearer <token>') or bind to 127.0.0.1")
        named = [("LESIONDX_TOKEN", self.token)] if self.token else []
        named += [(f"the token of user {user!r}", token) for user, token in self.user_tokens]
        for what, token in named:
            if len(token) < MIN_TOKEN_LENGTH or token != token.strip():
                raise SettingsError(
                    f"{what} is {len(token)} characters; use at least {MIN_TOKEN_LENGTH} without spaces "
                    "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')")
        users = [user for user, _ in self.user_tokens]
        if len(set(users)) != len(users) or len(self.identities) != len(named):
            raise SettingsError("every user needs exactly one token, and no two users (or LESIONDX_TOKEN) may share one")
        if self.reader_tokens:
            if not self.identities:
                raise SettingsError("LESIONDX_READER_TOKENS needs LESIONDX_TOKEN or LESIONDX_TOKENS for the staff: "
                                    "otherwise the rest of the API needs no token and readers are not blinded")
            readers = [reader for reader, _ in self.reader_tokens]
            for reader, token in self.reader_tokens:
                if len(token) < MIN_TOKEN_LENGTH or token != token.strip():
                    raise SettingsError(f"the reader-study token of {reader!r} is {len(token)} characters; use at "
                                        f"least {MIN_TOKEN_LENGTH} without spaces")
            if (len(set(readers)) != len(readers) or len(self.reader_identities) != len(readers)
                    or set(self.reader_identities) & set(self.identities)):
                raise SettingsError("every reader needs exactly one reader-study token, shared with nobody (staff "
                                    "included)")
        if self.max_uploads < 1 or self.upload_wait_s < 0 or self.upload_idle_s <= 0:
            raise SettingsError("LESIONDX_MAX_UPLOADS must be at least 1, the upload waits >= 0 s (idle > 0 s)")
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
        for aet in self.dicom_allowed_aets:  # else the DICOM node fails to start (pynetdicom refuses the list)
            if not 0 < len(aet) <= 16 or "\\" in aet or not aet.isprintable():
                raise SettingsError(f"LESIONDX_DICOM_ALLOWED_AETS: {aet!r} is not a DICOM AE title (1-16 characters, "
                                    "no backslash or control characters)")


_TRUE = ("1", "true", "yes", "on")
# (setting, environment variable, type, smallest value allowed, scale to the setting's unit)
_NUMBERS: tuple[tuple[str, str, type, float, float], ...] = (
    ("max_request_bytes", "LESIONDX_MAX_REQUEST_MB", int, 1e-6, MB),
    ("max_file_bytes", "LESIONDX_MAX_FILE_MB", int, 1e-6, MB),
    ("study_quiet_seconds", "LESIONDX_STUDY_QUIET_S", float, 0.0, 1.0),
    ("study_release_grace_s", "LESIONDX_STUDY_RELEASE_GRACE_S", float, 0.0, 1.0),
    ("max_pixels", "LESIONDX_MAX_PIXELS", int, 1.0, 1.0),
    ("zip_max_members", "LESIONDX_ZIP_MAX_MEMBERS", int, 1.0, 1.0),
    ("zip_max_total_bytes", "LESIONDX_ZIP_MAX_TOTAL_MB", int, 1e-6, MB),
    ("zip_max_ratio", "LESIONDX_ZIP_MAX_RATIO", float, 1e-6, 1.0),
    ("workers", "LESIONDX_WORKERS", int, 0.0, 1.0),
    ("job_timeout_s", "LESIONDX_JOB_TIMEOUT_S", float, 1e-3, 1.0),
    ("job_memory_mb", "LESIONDX_JOB_MEMORY_MB", int, 1.0, 1.0),
    ("lease_seconds", "LESIONDX_LEASE_S", float, 1e-3, 1.0),
    ("slow_job_s", "LESIONDX_SLOW_JOB_S", float, 0.0, 1.0),
    ("max_uploads", "LESIONDX_MAX_UPLOADS", int, 1.0, 1.0),
    ("upload_wait_s", "LESIONDX_UPLOAD_WAIT_S", float, 0.0, 1.0),
    ("upload_idle_s", "LESIONDX_UPLOAD_IDLE_S", float, 1e-3, 1.0),
    ("stop_grace_s", "LESIONDX_STOP_GRACE_S", float, 0.0, 1.0),
    ("retention_days", "LESIONDX_RETENTION_DAYS", float, 0.0, 1.0),
    ("study_retention_days", "LESIONDX_STUDY_RETENTION_DAYS", float, 0.0, 1.0),
    ("export_max_attempts", "LESIONDX_EXPORT_MAX_ATTEMPTS", int, 1.0, 1.0),
)


def env_number(env: Mapping[str, str], name: str, kind: type = float, *, minimum: float | None = None,
               scale: float = 1.0) -> int | float | None:
    """The number in ``env[name]`` times ``scale`` as ``kind`` (None when unset or blank). ``SettingsError``
    naming the variable when it is not a finite number, is below ``minimum``, or is fractional where a count
    (``kind`` int, ``scale`` 1) is expected."""
    text = (env.get(name) or "").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a number") from None
    if not math.isfinite(number):
        raise SettingsError(f"{name}={text!r} is not a finite number")
    if minimum is not None and number < minimum:
        raise SettingsError(f"{name}={text!r} must be at least {minimum:g}")
    if kind is int and scale == 1.0 and number != int(number):
        raise SettingsError(f"{name}={text!r} must be a whole number")
    return kind(number * scale)


def _deid_from_env(env: "os._Environ[str] | dict[str, str]") -> dict[str, object]:
    """De-identification options from the environment (see the module docstring)."""
    values: dict[str, object] = {}
    if env.get("LESIONDX_DEID_DATES"):
        dates = env["LESIONDX_DEID_DATES"].strip().lower()
        if dates not in ("remove", "shift", "full"):
            raise SettingsError(f"LESIONDX_DEID_DATES={dates!r} is not remove, shift or full")
        values["deid_dates"] = dates
    for key, name in (("deid_patient_characteristics", "LESIONDX_DEID_PATIENT_CHARACTERISTICS"),
                      ("refuse_burned_in", "LESIONDX_REFUSE_BURNED_IN")):
        if env.get(name):
            values[key] = env[name].strip().lower() in _TRUE
    return values


def _export_env(env: "os._Environ[str] | dict[str, str]") -> dict[str, object]:
    """PACS-export retry waits from the environment (retention and attempts are in ``_NUMBERS``)."""
    values: dict[str, object] = {}
    if env.get("LESIONDX_EXPORT_RETRY_S"):
        parts = [w for w in env["LESIONDX_EXPORT_RETRY_S"].split(",") if w.strip()]
        waits = tuple(float(env_number({"LESIONDX_EXPORT_RETRY_S": w}, "LESIONDX_EXPORT_RETRY_S", minimum=0.0))
                      for w in parts)  # every part is non-blank, so never None
        if not waits:
            raise SettingsError("LESIONDX_EXPORT_RETRY_S must list waits in seconds, e.g. '30,120,600'")
        values["export_retry_seconds"] = waits
    return values


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
