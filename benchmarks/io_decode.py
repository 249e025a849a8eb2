"""Time to decode and order a real JPEG-lossless chest-CT DICOM series (foundation benchmark).

Usage: .venv/bin/python benchmarks/io_decode.py ../shared/data/covid_ct_md_sample/series/P002 [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from lesiondx.io import apply_window, read_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("series", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        volume = read_study(args.series)
        apply_window(volume.pixels, "lung")
        times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.series}: {volume.n_slices} slices {volume.pixels.shape[1:]}; "
          f"read+window best {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s "
          f"({1000 * min(times) / volume.n_slices:.1f} ms/slice); peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
