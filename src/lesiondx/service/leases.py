"""Worker identities and job leases.

A worker id is ``HOST:PID:NONCE:NAME``: ``HOST:PID:NONCE`` (the *owner*) is the process that renews the
leases (the service or ``lesiondx worker`` process), NAME one of its workers. The owner renews
``heartbeat_at`` of every study its workers hold; any live owner (this machine or another one) re-queues a
running study whose heartbeat is older than the lease, and on its own host at once when the claiming
process no longer exists. Such a study is *interrupted*, not failed: the run is not charged to it.
"""

from __future__ import annotations

import logging
import os
import secrets
import select
import signal
import socket
import time
from pathlib import Path

from .db import Database
from .storage import log_failure
from .upgrade import OldReleaseWatch

log = logging.getLogger("lesiondx.service.worker")
HOST = socket.gethostname()[:32].replace(":", "_") or "host"


def new_owner() -> str:
    """A fresh owner id for this process (the nonce tells it apart from an earlier process with the same pid)."""
    return f"{HOST}:{os.getpid()}:{secrets.token_hex(3)}"


def pid_alive(pid: int) -> bool:
    """True while *some* process has ``pid`` (after an end the number may belong to another one: :class:`ProcessRef`)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks after boot (``/proc/<pid>/stat`` field 22); None without /proc,
    without such a process, or for a zombie (ended, not yet reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


class ProcessRef:
    """One process rather than its pid, which the system hands to another process once this one has ended:
    a pidfd (Linux >= 5.3), else the pid with its start time from /proc, else (no /proc) the bare pid. Make it
    while the process surely lives (right after starting it); then :meth:`send` never reaches a process that
    reused the number and :meth:`alive` never takes one for it. (Start times count 1/100 s ticks: a pid handed
    on within the same tick would pass, but pids are handed out in increasing order up to ``pid_max``.)"""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd: int | None = None
        self._gone = False
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:  # already ended and reaped
            self._gone = True
        except (AttributeError, OSError):  # no pidfd here (older kernel or Python, a seccomp filter)
            pass
        self._started = None if self._gone else start_ticks(pid)

    def alive(self) -> bool:
        """True until the process has ended (a zombie counts as ended where a pidfd tells)."""
        if self._gone:
            return False
        if self._fd is not None:
            ended = bool(select.select([self._fd], [], [], 0)[0])  # a pidfd is readable once its process ended
        else:
            ended = not pid_alive(self.pid) or (self._started is not None and start_ticks(self.pid) != self._started)
        self._gone = ended
        return not ended

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: for ever) for the process to end; True when it has."""
        if self._fd is not None and not self._gone:
            return bool(select.select([self._fd], [], [], timeout)[0]) or not self.alive()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.alive():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    def send(self, sig: int) -> bool:
        """Send ``sig`` to the process if it still exists; False when it has ended (nothing is sent then)."""
        if self._fd is not None:
            try:
                signal.pidfd_send_signal(self._fd, sig)
                return True
            except ProcessLookupError:
                self._gone = True
                return False
        if not self.alive():
            return False
        try:
            os.kill(self.pid, sig)  # the start time matched just now: the pid was not handed on in between
            return True
        except ProcessLookupError:
            self._gone = True
            return False

    def close(self) -> None:
        """Release the pidfd (the object then answers from the pid and start time)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def claim_is_dead(claim: str, me: str) -> bool:
    """True when ``claim`` (a worker id) belongs to a process on this host that is gone: its pid no longer
    exists, or it is this pid with another nonce (an earlier incarnation, e.g. pid 1 in a container)."""
    parts = claim.split(":")
    if len(parts) < 3 or parts[0] != HOST or not parts[1].isdigit():
        return False  # another machine: only its lease tells
    owner = ":".join(parts[:3])
    if owner == me:
        return False
    pid = int(parts[1])
    return pid == os.getpid() or not pid_alive(pid)


class LeaseKeeper:
    """Renews this owner's leases and re-queues other owners' expired ones; call :meth:`tick` often."""

    def __init__(self, db: Database, owner: str, lease_seconds: float) -> None:
        self.db, self.owner, self.lease_seconds = db, owner, max(1.0, float(lease_seconds))
        self.period = self.lease_seconds / 6  # several renewals per lease: one slow beat does not lose it
        self._next = 0.0
        self.old_release = OldReleaseWatch()

    def sweep(self) -> list[str]:
        """Re-queue studies of workers that are gone (expired lease or dead process on this host)."""
        self.old_release.check(self.db)  # before the sweep re-queues what it claimed
        released = self.db.release_interrupted(self.lease_seconds, lambda claim: claim_is_dead(claim, self.owner))
        if released:
            log.warning("re-queued %d job(s) whose worker stopped (not counted as attempts)", len(released))
        return released

    def tick(self) -> None:
        """Heartbeat and sweep when due (every ``lease_seconds / 6``); database errors are logged, not raised."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.period
        try:
            self.db.heartbeat(self.owner)
            self.sweep()
        except Exception as exc:  # database briefly unreachable: the next tick retries
            log_failure(log, "cannot renew job leases", exc)
