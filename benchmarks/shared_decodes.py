"""The service worker's per-job sequence (input previews, the stack viewer's slices, the predictor) with and without
``lesiondx.io.shared_decodes``, alternating, in one process: decodes of the input, seconds, same results.

usage: python benchmarks/shared_decodes.py TASK INPUT [--rounds 2]
  e.g. ct-liver /tmp/ctl60 (a folder of symlinks to 60 IRCADb p01 slices, as benchmarks/engines.sh makes it),
  ct-covid examples/covid_ct_md_mini/series/P002. The first pair also pays the model sessions' creation.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import lesiondx.io.reader as reader
from lesiondx.io import shared_decodes
from lesiondx.service.viewer import store_slices
from lesiondx.service.worker import write_previews
from lesiondx.tasks import load_task

DECODES = {"study": 0, "file": 0}


def _counting(name: str, read: Any) -> Any:
    def wrapper(*args: Any) -> Any:
        DECODES[name] += 1
        return read(*args)
    return wrapper


def _comparable(value: Any) -> Any:
    """A result without timings and temporary paths."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in ("seconds", "overlay", "overlays", "heatmaps")}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return Path(value).name if isinstance(value, str) and value.startswith(tempfile.gettempdir()) else value


def job(task: str, path: Path, shared: bool) -> tuple[float, dict[str, int], Any]:
    DECODES.update(study=0, file=0)
    out = Path(tempfile.mkdtemp())
    start = time.perf_counter()
    with shared_decodes() if shared else contextlib.nullcontext():
        write_previews([path], out, "lung" if task == "ct-covid" else "abdomen")
        store_slices([path], out)
        result = load_task(task).predict([path], "default", out / "out")
    return time.perf_counter() - start, dict(DECODES), _comparable(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("input", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    reader._read_study = _counting("study", reader._read_study)  # folders (series) really decoded
    reader._read_image = _counting("file", reader._read_image)
    print(f"{args.task} {args.input}, load average {os.getloadavg()[0]:.2f}")
    print("| round | shared_decodes | read_study / read_image bodies run (decodes) | seconds |")
    print("|---|---|---:|---:|")
    results = {}
    for r in range(1, args.rounds + 1):
        for shared in (False, True) if r % 2 else (True, False):
            seconds, decodes, result = job(args.task, args.input, shared)
            results.setdefault(shared, result)
            print(f"| {r} | {'yes' if shared else 'no'} | {decodes['study']} / {decodes['file']} | {seconds:.1f} |")
    print(f"same results with and without: {results[True] == results[False]}; "
          f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
