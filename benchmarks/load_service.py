"""Bounded local load test of the lesiondx service: N uploads with C concurrent clients (loopback only).

Measures upload latency (POST /api/studies → 201), upload throughput, and end-to-end time until every
study is done (queue + worker + predictor). Stops by itself after ``--requests`` uploads or
``--max-seconds``, whichever comes first.

    # self-contained: starts `run_server` on a free loopback port with the TEST DOUBLE predictor
    .venv/bin/python benchmarks/load_service.py --spawn --requests 100 --concurrency 20

    # against a running service (must be on 127.0.0.1 / localhost)
    .venv/bin/python benchmarks/load_service.py --url http://127.0.0.1:8000 --requests 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = sorted((ROOT / "examples/aul_liver_us_mini/images").glob("*.jpg"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_server(storage: Path, predictor: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start run_server in a subprocess on a free loopback port (extra ``env`` e.g. LESIONDX_WORKERS);
    returns (process, base URL)."""
    port = _free_port()
    code = ("from pathlib import Path; from lesiondx.service.server import run_server; "
            f"run_server(host='127.0.0.1', port={port}, db=None, storage=Path({str(storage)!r}))")
    env = {**os.environ, "LESIONDX_LOG_LEVEL": "WARNING", **(env or {})}
    if predictor != "real":
        env["LESIONDX_PREDICTOR"] = predictor
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


async def run_load(url: str, images: list[Path], requests: int, concurrency: int, max_seconds: float,
                   token: str | None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    payloads = [(p.name, p.read_bytes()) for p in images]
    latencies: list[float] = []
    submitted: dict[str, float] = {}
    failures: list[str] = []
    sem = asyncio.Semaphore(concurrency)
    start = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:

        async def one(i: int) -> None:
            async with sem:
                if time.monotonic() - start > max_seconds:
                    return
                name, data = payloads[i % len(payloads)]
                t0 = time.monotonic()
                try:
                    r = await client.post("/api/studies", files={"files": (name, data, "image/jpeg")})
                except httpx.HTTPError as exc:
                    failures.append(type(exc).__name__)
                    return
                latencies.append(time.monotonic() - t0)
                if r.status_code == 201:
                    submitted[r.json()["id"]] = t0
                else:
                    failures.append(str(r.status_code))

        await asyncio.gather(*(one(i) for i in range(requests)))
        upload_wall = time.monotonic() - start
        done_at: dict[str, float] = {}
        status: dict[str, str] = {}
        while len(done_at) < len(submitted) and time.monotonic() - start < max_seconds:
            rows = (await client.get("/api/studies", params={"limit": 1000})).json()
            now = time.monotonic()
            for row in rows:
                if row["id"] in submitted and row["status"] in ("done", "failed") and row["id"] not in done_at:
                    done_at[row["id"]] = now
                    status[row["id"]] = row["status"]
            await asyncio.sleep(0.1)
        total_wall = time.monotonic() - start
    e2e = [done_at[i] - submitted[i] for i in done_at]
    return {
        "requests": requests, "concurrency": concurrency, "uploaded": len(submitted), "upload_failures": failures,
        "upload_latency_s": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95),
                             "max": max(latencies) if latencies else None,
                             "mean": statistics.fmean(latencies) if latencies else None},
        "upload_throughput_per_s": len(submitted) / upload_wall if upload_wall else None,
        "processed": len(done_at), "failed_studies": sum(1 for s in status.values() if s == "failed"),
        "end_to_end_s": {"p50": _percentile(e2e, 50), "p95": _percentile(e2e, 95), "max": max(e2e) if e2e else None},
        "processing_throughput_per_s": len(done_at) / total_wall if total_wall else None,
        "wall_s": total_wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--spawn", action="store_true", help="start a service on a free loopback port (temp storage)")
    parser.add_argument("--predictor", default="lesiondx.service.testing:stub_predictor",
                        help="with --spawn: module:callable, or 'real' for the task models")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--token", default=os.environ.get("LESIONDX_TOKEN"))
    parser.add_argument("--images", nargs="*", type=Path, default=DEFAULT_IMAGES)
    args = parser.parse_args()
    if not 0 < args.requests <= 10_000 or not 0 < args.concurrency <= 200 or not 0 < args.max_seconds <= 3600:
        parser.error("bounded runs only: requests ≤ 10000, concurrency ≤ 200, max-seconds ≤ 3600")
    proc = None
    url = args.url
    with tempfile.TemporaryDirectory(prefix="lesiondx-bench-") as tmp:
        if args.spawn:
            proc, url = spawn_server(Path(tmp) / "store", args.predictor)
        host = urlparse(url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            parser.error(f"loopback only: refusing to load {host!r}")
        try:
            result = asyncio.run(run_load(url, args.images, args.requests, args.concurrency, args.max_seconds,
                                          args.token))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(20)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    result["predictor"] = args.predictor if args.spawn else "as configured on the server"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
