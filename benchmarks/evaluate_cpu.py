"""`lesiondx evaluate` in this process; prints its wall-clock and CPU seconds (user + system, all threads), which
load from other work on a shared machine disturbs less than wall-clock time.
Usage: PYTHONPATH=src python benchmarks/evaluate_cpu.py TASK DATA OUT"""

from __future__ import annotations

import resource
import sys
import time

if __name__ == "__main__":
    task, data, out = sys.argv[1:4]
    started = time.perf_counter()
    from lesiondx.cli import app

    try:
        app(["evaluate", "--task", task, "--data", data, "--out", out], standalone_mode=False)
    except SystemExit:
        pass
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"wall {time.perf_counter() - started:.1f} s  cpu {usage.ru_utime + usage.ru_stime:.1f} s", file=sys.stderr)
