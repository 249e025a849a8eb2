"""Throughput of the service with 1 and 2 worker processes, side by side in one run (loopback only).

For each worker count: starts ``run_server`` with ``LESIONDX_WORKERS=N`` on a free 127.0.0.1 port and a
temporary storage folder, warms every worker up (``--warmup`` uploads, not measured: model loading),
then uploads ``--requests`` real liver-ultrasound JPEGs through ``POST /api/studies`` with
``--concurrency`` clients and waits until every study is done (see ``load_service.run_load``).

    .venv/bin/python benchmarks/workers_throughput.py --predictor real --requests 20 --workers 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from load_service import DEFAULT_IMAGES, run_load, spawn_server


def measure(workers: int, args: argparse.Namespace) -> dict:
    """One service with ``workers`` worker processes: warm-up, then the measured batch."""
    with tempfile.TemporaryDirectory(prefix="lesiondx-bench-") as tmp:
        env = {"LESIONDX_WORKERS": str(workers), "LESIONDX_SLOW_JOB_S": "0"}  # exactly N processes, no extra one
        proc, url = spawn_server(Path(tmp) / "store", args.predictor, env=env)
        try:
            if args.warmup:
                asyncio.run(run_load(url, args.images, args.warmup, args.warmup, 600, None))
            load_before = os.getloadavg()[0]
            result = asyncio.run(run_load(url, args.images, args.requests, args.concurrency, args.max_seconds, None))
            result["load_average_1min"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
        finally:
            proc.terminate()
            proc.wait(30)
    result["workers"] = workers
    result["studies_per_min"] = 60 * result["processed"] / result["wall_s"] if result["wall_s"] else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictor", default="real", help="'real' (task models) or a module:callable test double")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=4, help="unmeasured uploads first (each worker loads its model)")
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--images", nargs="*", type=Path, default=DEFAULT_IMAGES)
    args = parser.parse_args()
    if not 0 < args.requests <= 1000 or not all(0 < w <= 8 for w in args.workers):
        parser.error("bounded runs only: requests <= 1000, 1-8 workers")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs = [measure(w, args) for w in args.workers]
    print("| worker processes | studies done / failed | upload → done p50 / p95 / max (s) | studies/min | "
          "batch wall (s) | load avg before → after |")
    print("|---|---|---|---:|---:|---|")
    for r in runs:
        e2e = r["end_to_end_s"]
        print(f"| {r['workers']} | {r['processed'] - r['failed_studies']} / {r['failed_studies']} | "
              f"{e2e['p50']:.1f} / {e2e['p95']:.1f} / {e2e['max']:.1f} | {r['studies_per_min']:.1f} | "
              f"{r['wall_s']:.1f} | {r['load_average_1min'][0]} → {r['load_average_1min'][1]} |")
    print(json.dumps({"started": started, "predictor": args.predictor, "cpus": os.cpu_count(),
                      "python": platform.python_version(), "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
