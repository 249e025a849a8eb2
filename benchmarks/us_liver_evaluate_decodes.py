"""Decodes per frame in ``evaluate --task us-liver`` and what one decode costs (AUL frames; timing only).

Usage: OMP_NUM_THREADS=1 python benchmarks/us_liver_evaluate_decodes.py DATA [N]"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from lesiondx.io import raster


def main(data: Path, n: int) -> None:
    files = sorted((data / "images").glob("*.jpg"))
    files = [files[i] for i in np.linspace(0, len(files) - 1, n).astype(int)]
    seconds = []
    for path in files:
        t = time.perf_counter()
        raster._decode(path, ("grey", "rgb"))  # what read_image (read_raster) decodes
        raster._decode(path, ("grey",))  # what read_frame (read_raster_array) decodes
        seconds.append(time.perf_counter() - t)
    print(f"{n} frames: one read_image + one read_frame decode: median {np.median(seconds) * 1000:.1f} ms "
          f"(IQR {np.quantile(seconds, 0.25) * 1000:.1f}-{np.quantile(seconds, 0.75) * 1000:.1f})")
    counts: Counter[str] = Counter()
    decode = raster._decode
    raster._decode = lambda p, m: (counts.update([Path(p).name]), decode(p, m))[1]
    from lesiondx.us_liver import task

    t = time.perf_counter()
    task.evaluate("default", data, Path("/tmp/us_liver_evaluate_decodes"))
    print(f"evaluate on {data}: {time.perf_counter() - t:.1f} s; decodes per frame: "
          f"{sorted(Counter(v for k, v in counts.items() if k.endswith('.jpg')).items())}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 60)
