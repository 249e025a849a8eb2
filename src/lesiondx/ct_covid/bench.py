"""Timing of one series end to end, by stage, for ONNX Runtime (the default engine), eager PyTorch and the
optimised torch paths, interleaved over ``--rounds`` (on a shared machine each round sees about the same load).

Usage: ``python -m lesiondx.ct_covid.bench SERIES_FOLDER [--model default] [--threads 2] [--rounds 1] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import warnings

import torch

from lesiondx.io import read_study

from .model import LoadedModel, load_model, to_input
from .pipeline import analyse_series


def _variant(loaded: LoadedModel, name: str, model: str) -> tuple[LoadedModel, bool]:
    """``onnx``: ONNX Runtime (``model.onnx``, graph optimisation ALL); ``eager``: contiguous weights,
    ``no_grad``; ``channels_last``: inference_mode + channels-last batches (the torch engine's path);
    ``torchscript``: that plus ``torch.jit.trace`` + ``freeze``."""
    if name == "onnx":
        return load_model(model, engine="onnx"), True
    module = loaded.module
    if name == "eager":
        return dataclasses.replace(loaded, module=module.to(memory_format=torch.contiguous_format)), False
    module = module.to(memory_format=torch.channels_last)
    if name == "torchscript":
        size = loaded.config.input_size
        example = to_input(torch.zeros(loaded.config.infer_batch, size, size).numpy()).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.freeze(torch.jit.trace(module.eval(), example))
            traced = torch.jit.optimize_for_inference(traced)
        return dataclasses.replace(loaded, module=traced), True
    return dataclasses.replace(loaded, module=module), True


def benchmark(series: Path, model: str = "default", *, threads: int = 2, rounds: int = 1,
              variants: tuple[str, ...] = ("onnx", "eager", "channels_last", "torchscript")) -> dict[str, Any]:
    """Wall seconds per stage (decode, lung field, crop/resize, model, boxes + rule) for each variant,
    plus the process CPU seconds after decoding and the machine's 1-min load average (shared machines).
    With ``rounds`` > 1 the variants run in turn, order reversed every other round; keys get ``#round``."""
    torch.set_num_threads(threads)
    os.environ["LESIONDX_THREADS"] = str(threads)
    loaded = load_model(model, engine="torch")
    results: dict[str, Any] = {"series": str(series), "threads": threads, "model_version": loaded.version}
    order = [(r, v) for r in range(rounds) for v in (variants if r % 2 == 0 else variants[::-1])]
    for r, name in order:
        key = name if rounds == 1 else f"{name}#{r + 1}"
        t = time.perf_counter()
        image = read_study(series)
        decode = time.perf_counter() - t
        try:
            variant, fast = _variant(loaded, name, model)
        except Exception as exc:  # a path that cannot be built here is reported, not fatal
            results[key] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        analyse_series(image.pixels[:2], variant, is_hu=image.is_hu, spacing=image.spacing, fast=fast)  # warm-up, not timed
        t, cpu = time.perf_counter(), time.process_time()
        result = analyse_series(image.pixels, variant, is_hu=image.is_hu, spacing=image.spacing, fast=fast)
        total = decode + time.perf_counter() - t
        cpu = time.process_time() - cpu
        results[key] = {"n_slices": image.n_slices, "decode_s": round(decode, 2),
                         **{k: round(v, 2) for k, v in result.timings.items()}, "total_s": round(total, 2),
                         "cpu_s_after_decode": round(cpu, 2), "load_avg_1min": round(os.getloadavg()[0], 1),
                         "decision": result.patient.decision, "score": round(result.patient.score, 4)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("series", type=Path)
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--variants", default="onnx,eager,channels_last,torchscript")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = benchmark(args.series, args.model, threads=args.threads, rounds=args.rounds,
                        variants=tuple(args.variants.split(",")))
    text = json.dumps(results, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
