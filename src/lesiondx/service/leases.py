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
import socket
import time

from .db import Database
from .storage import log_failure

log = logging.getLogger("lesiondx.service.worker")
HOST = socket.gethostname()[:32].replace(":", "_") or "host"


def new_owner() -> str:
    """A fresh owner id for this process (the nonce tells it apart from an earlier process with the same pid)."""
    return f"{HOST}:{os.getpid()}:{secrets.token_hex(3)}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


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

    def sweep(self) -> list[str]:
        """Re-queue studies of workers that are gone (expired lease or dead process on this host)."""
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
