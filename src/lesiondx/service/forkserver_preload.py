"""Imported by the worker processes' forkserver (its preload, see :func:`lesiondx.service.supervisor._context`): there
SIGTERM is ignored, so a stop signal sent to the whole group or cgroup (``systemctl stop``, ``kill -TERM -PGID``) does
not kill the forkserver, which would make every worker look lost. The workers it forks inherit that and set their
own handler (finish the job, then exit). The forkserver still ends when the service ends (its pipe closes).
Imported anywhere else this module does nothing."""

from __future__ import annotations

import signal
import sys


def in_forkserver() -> bool:
    """True while imported by ``multiprocessing.forkserver.main`` (the forkserver's preload)."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "main" and frame.f_globals.get("__name__") == "multiprocessing.forkserver":
            return True
        frame = frame.f_back
    return False


if in_forkserver():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
