"""Content-addressed file storage under the service's storage folder.

Layout::

    <root>/secret.key                 de-identification salt (0600), see settings.load_salt
    <root>/lesiondx.sqlite3           default database
    <root>/blobs/ab/abcdef...         uploaded files by sha256 (DICOM already de-identified)
    <root>/results/<study_id>/...     overlays and DICOM results of a study (published whole, see publish_results)
    <root>/results/.run-<study_id>-*  results of one run being written (staging; moved into place when done)
    <root>/work/<study_id>/run-*/...  inputs materialised for a running job (removed after)
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def safe_name(name: str, default: str = "file") -> str:
    """A file name without directories or odd characters (``../x y.png`` → ``x_y.png``)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _SAFE_NAME.sub("_", base).strip("._")
    return cleaned[:120] or default


_SPACE = (errno.ENOSPC, errno.EDQUOT)
_ACCESS = (errno.EACCES, errno.EPERM, errno.EROFS)
_DB_SPACE = ("database or disk is full", "no space left", "could not extend file", "disk full")
_DB_ACCESS = ("readonly database", "read-only", "unable to open database file", "permission denied")


def storage_problem(exc: BaseException) -> str | None:
    """One line for an error that comes from the storage folder or database running out of space or being
    unwritable (``OSError`` ENOSPC/EDQUOT/EACCES/EPERM/EROFS, SQLite/PostgreSQL "disk is full", "readonly
    database"...) or from the database being unreachable (stopped, restarting) or locked by another process (SQLite);
    None for any other error."""
    if isinstance(exc, OSError) and exc.errno in _SPACE + _ACCESS:
        full, where = exc.errno in _SPACE, "the storage folder"
    else:
        text = str(getattr(exc, "orig", None) or exc).lower()
        full = any(marker in text for marker in _DB_SPACE)
        if not full and not any(marker in text for marker in _DB_ACCESS):
            if "database is locked" in text and _db_unreachable(exc):
                return LOCKED
            return UNREACHABLE if _db_unreachable(exc) else None
        where = "the database"
    return ("the service's storage is full (no space left in " + where + "): free space there" if full else
            "the service cannot write to " + where + " (permission denied or read-only): check its owner and mode")


UNREACHABLE = "the service's database is unavailable (stopped, restarting or unreachable): try again shortly"
LOCKED = ("the service's database is locked by another process for over 30 s (a backup, an sqlite3 shell, a second "
          "lesiondx on the same storage?): try again shortly")


def _db_unreachable(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError, InvalidatePoolError, OperationalError

    return isinstance(exc, (OperationalError, InvalidatePoolError)) or (
        isinstance(exc, DBAPIError) and bool(exc.connection_invalidated))


_last_logged: dict[str, float] = {}


def log_failure(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a failure of a retrying loop at most once a minute per ``what`` and error (loops retry every second or
    faster): storage or database trouble (:func:`storage_problem`) as one line without traceback, any other
    error with its traceback (``logger.exception``)."""
    reason = storage_problem(exc)
    key, now = f"{what}|{reason or type(exc).__name__ + str(exc)[:200]}", time.monotonic()
    if now - _last_logged.get(key, -1e9) < 60:
        return
    _last_logged[key] = now
    if reason is None:
        logger.error(what, exc_info=exc)
    else:
        logger.error("%s: %s", what, reason)


class Storage:
    """Blobs by content hash plus per-study result and work folders."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for sub in ("blobs", "results", "work"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._held: Counter[str] = Counter()  # blobs of uploads not yet committed (see holding)
        self._held_lock = threading.Lock()
        self._holds = threading.local()  # this thread's open holding() blocks

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Blobs this thread stores (:meth:`put`) inside the block are kept by :meth:`remove_blob` until the block
        ends: wrap an upload up to the commit of its rows, so that housekeeping never takes a blob whose study is
        not committed yet, whatever the clock or the files' modification times say."""
        held: list[str] = []
        stack = self._holds.__dict__.setdefault("stack", [])
        stack.append(held)
        try:
            yield
        finally:
            stack.remove(held)
            with self._held_lock:
                self._held.subtract(held)
                self._held += Counter()  # drop counts at zero

    def _hold(self, sha: str) -> None:
        for held in getattr(self._holds, "stack", []):
            held.append(sha)
            with self._held_lock:
                self._held[sha] += 1

    def is_held(self, sha: str) -> bool:
        """True while an upload that stored ``sha`` has not finished (:meth:`holding`)."""
        with self._held_lock:
            return self._held[sha] > 0

    def blob_path(self, sha: str) -> Path:
        """Where the blob with hash ``sha`` lives (whether or not it exists)."""
        if not _SHA_RE.match(sha):
            raise ValueError(f"not a sha256 hex digest: {sha!r}")
        return self.root / "blobs" / sha[:2] / sha

    def put(self, data: bytes) -> str:
        """Store ``data`` durably (write, fsync, atomic rename); returns its sha256. Idempotent."""
        sha = sha256_bytes(data)
        self._hold(sha)  # before it is (re)written: a removal from now on sees the mark (remove_blob)
        target = self.blob_path(sha)
        if target.exists() and target.stat().st_size == len(data):
            try:
                os.utime(target)  # stored again: a housekeeping pass racing this upload keeps it (remove_blob)
                return sha
            except FileNotFoundError:  # removed just now: write it again
                pass
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def remove_blob(self, sha: str, grace_s: float) -> int | None:
        """Remove a blob no study refers to (the caller checked); its size in bytes, or None when it is missing,
        belongs to an upload still in progress (:meth:`holding`) or was stored again within ``grace_s`` s. Renamed
        aside first: an upload of the same content from now on finds no blob and writes it again, and one that
        marked or refreshed it just before is seen and kept."""
        target = self.blob_path(sha)
        aside = target.with_name(f".del-{sha}")
        try:
            os.replace(target, aside)
        except FileNotFoundError:
            return None
        info = aside.stat()
        if self.is_held(sha) or info.st_mtime > time.time() - grace_s:
            if not target.exists():
                os.replace(aside, target)
            else:
                aside.unlink(missing_ok=True)
            return None
        aside.unlink(missing_ok=True)
        return info.st_size

    def write_problem(self) -> str | None:
        """Why files cannot be written in the storage folder now (read-only, permission denied, full), or None:
        one unnamed file is created there and dropped at once (nothing is left behind, even at a kill)."""
        try:
            with tempfile.TemporaryFile(dir=self.root):
                return None
        except OSError as exc:
            return storage_problem(exc) or f"cannot write to the storage folder ({exc.strerror or exc})"

    def has(self, sha: str) -> bool:
        """True when the blob exists."""
        return self.blob_path(sha).is_file()

    def results_dir(self, study_id: str) -> Path:
        """The (created) folder for a study's result files."""
        path = self.root / "results" / safe_name(study_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stage_results(self, study_id: str) -> Path:
        """A fresh, empty staging folder for one run's results, ``results/.run-<study>-<random>``, after removing
        what earlier runs of the study left there (a run killed before publishing). The published folder is left
        as it is until :meth:`publish_results`: readers see the previous results whole, never a half-written run."""
        name = safe_name(study_id)
        for leftover in (self.root / "results").glob(f".run-{name}-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        path = self.root / "results" / f".run-{name}-{secrets.token_hex(4)}"
        path.mkdir(parents=True)
        return path

    def publish_results(self, study_id: str, staged: Path) -> None:
        """Make a staging folder (:meth:`stage_results`) the study's results: the published folder is renamed aside,
        the staged one renamed into its place (a reader in between finds no folder, never a mix) and the old one
        removed. Call it only while the run holds the study's claim (the worker does, inside the transaction
        that stores the outcome)."""
        target = self.root / "results" / safe_name(study_id)
        for attempt in range(3):  # a stale run's progress file may land in a folder made in between: move it too
            aside = target.with_name(f".old-{target.name}-{secrets.token_hex(4)}")
            try:
                os.replace(target, aside)
            except FileNotFoundError:
                aside = None
            try:
                os.replace(staged, target)  # also over an empty folder a reader made in between (results_dir)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or attempt == 2:
                    raise
            else:
                break
            finally:
                if aside is not None:
                    shutil.rmtree(aside, ignore_errors=True)

    @staticmethod
    def discard_results(staged: Path) -> None:
        """Remove a staging folder whose run lost its claim (or failed to store its outcome)."""
        shutil.rmtree(staged, ignore_errors=True)

    def result_file(self, study_id: str, name: str) -> Path | None:
        """A result file of a study by name, or None (never escapes the study's folder)."""
        if name != safe_name(name):
            return None
        path = self.root / "results" / safe_name(study_id) / name
        return path if path.is_file() else None

    def work_dir(self, study_id: str) -> Path:
        """A fresh, empty work folder for one run of a job, ``work/<study>/run-<random>``, after removing what earlier
        runs of the study left. A run that has lost its claim but goes on (its worker outlived a killed service for
        a moment, or paused past its lease) has a folder of its own: its clean-up cannot delete this run's inputs."""
        study = self.root / "work" / safe_name(study_id)
        shutil.rmtree(study, ignore_errors=True)
        path = study / f"run-{secrets.token_hex(4)}"
        path.mkdir(parents=True)
        return path

    def clear_work(self, work: Path) -> None:
        """Remove one run's work folder (from :meth:`work_dir`), and its study's folder when no other run uses it."""
        shutil.rmtree(work, ignore_errors=True)
        try:
            work.parent.rmdir()
        except OSError:  # another run's folder is there (or it is gone already)
            pass
