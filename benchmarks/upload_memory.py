"""Peak memory of the service process under C concurrent uploads of one large synthetic PNG, and /api/health
latency meanwhile (loopback only; starts its own server with the TEST DOUBLE predictor and one worker).

    .venv/bin/python benchmarks/upload_memory.py --concurrency 16 --side 4000 --max-uploads 4

The image is SYNTHETIC (uniform noise, side x side pixels, 8-bit grey); --max-uploads sets LESIONDX_MAX_UPLOADS.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_service import spawn_server  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


async def burst(url: str, data: bytes, concurrency: int) -> dict:
    latencies: list[float] = []
    codes: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=300,
                                 limits=httpx.Limits(max_connections=concurrency + 5)) as client:
        async def upload(i: int) -> None:
            try:
                r = await client.post("/api/studies", files={"files": (f"big{i}.png", data, "image/png")},
                                      data={"task": "us-liver"})
                codes.append(str(r.status_code))
            except httpx.HTTPError as exc:
                codes.append(type(exc).__name__)

        async def probe() -> None:
            await asyncio.sleep(0.5)
            for _ in range(10):
                t0 = time.monotonic()
                await client.get("/api/health")
                latencies.append(time.monotonic() - t0)
                await asyncio.sleep(0.3)

        t0 = time.monotonic()
        await asyncio.gather(probe(), *(upload(i) for i in range(concurrency)))
        wall = time.monotonic() - t0
    return {"codes": {c: codes.count(c) for c in sorted(set(codes))}, "wall_s": round(wall, 1),
            "health_latency_s": {"median": round(sorted(latencies)[len(latencies) // 2], 2),
                                 "max": round(max(latencies), 2)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--side", type=int, default=4000)
    parser.add_argument("--max-uploads", type=int, default=4)
    args = parser.parse_args()
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (args.side, args.side), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "PNG")
    data = buffer.getvalue()
    with tempfile.TemporaryDirectory(prefix="lesiondx-upload-memory-") as folder:
        proc, url = spawn_server(Path(folder) / "store", "lesiondx.service.testing:stub_predictor",
                                 {"LESIONDX_WORKERS": "1", "LESIONDX_MAX_UPLOADS": str(args.max_uploads),
                                  "LESIONDX_UPLOAD_WAIT_S": "300"})
        try:
            before, peak, stop = rss_mb(proc.pid), [0.0], threading.Event()

            def watch() -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], rss_mb(proc.pid))
                    time.sleep(0.02)

            threading.Thread(target=watch, daemon=True).start()
            result = asyncio.run(burst(url, data, args.concurrency))
            stop.set()
        finally:
            proc.terminate()
            proc.wait(30)
    print(json.dumps({"file_mb": round(len(data) / 2**20, 1), "concurrency": args.concurrency,
                      "max_uploads": args.max_uploads, "rss_mb_before": round(before),
                      "rss_mb_peak": round(peak[0]), **result, "loadavg": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
