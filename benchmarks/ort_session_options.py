"""ONNX Runtime session options on this machine: intra-op thread spinning on/off (and the graph optimisation
level) for the shipped networks, wall and process CPU time per run, interleaved so both see the same load.

Inputs are random arrays of each network's input shape (timing only; outputs are not looked at).

usage: python benchmarks/ort_session_options.py [--rounds 3] [--runs 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = {  # file, batch used by a predict (us-liver: 4 magnified views, ct-covid: one slice per run)
    "gate lite0": ("models/gate/lite0_features.onnx", 1),
    "us-liver segmenter": ("models/us-liver/segmenter.onnx", 1),
    "us-liver classifier": ("models/us-liver/classifier.onnx", 4),
    "ct-covid UNet++": ("models/ct-covid/model.onnx", 1),
}
VARIANTS = {  # name: (optimisation level, allow spinning)
    "ALL, spinning (before)": (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "1"),
    "ALL, no spinning (now)": (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "0"),
    "BASIC, no spinning": (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "0"),
}


def session(path: Path, level: ort.GraphOptimizationLevel, spin: str, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def feeds(sess: ort.InferenceSession, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for inp in sess.get_inputs():
        shape = [batch if i == 0 and not isinstance(d, int) else (d if isinstance(d, int) else 192)
                 for i, d in enumerate(inp.shape)]
        out[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}, {args.threads} intra-op threads, load average {os.getloadavg()[0]:.2f}")
    rows: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for r in range(args.rounds):
        order = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
        for net, (rel, batch) in NETWORKS.items():
            for variant in order:
                level, spin = VARIANTS[variant]
                t0 = time.perf_counter()
                sess = session(ROOT / rel, level, spin, args.threads)
                create = time.perf_counter() - t0
                x = feeds(sess, batch)
                sess.run(None, x)  # first run (allocations) not counted
                t1, c1 = time.perf_counter(), time.process_time()
                for _ in range(args.runs):
                    sess.run(None, x)
                wall, cpu = (time.perf_counter() - t1) / args.runs, (time.process_time() - c1) / args.runs
                rows.setdefault((net, variant), []).append((create, wall, cpu))
    print("| network | variant | session creation s | wall ms / run | CPU ms / run |")
    print("|---|---|---:|---:|---:|")
    for (net, variant), values in rows.items():
        med = np.median(np.asarray(values), axis=0)
        print(f"| {net} | {variant} | {med[0]:.3f} | {med[1] * 1000:.0f} | {med[2] * 1000:.0f} |")
    print(f"medians of {args.rounds} rounds x {args.runs} runs; load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
