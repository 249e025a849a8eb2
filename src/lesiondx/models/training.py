"""Small training-loop helpers shared by the tasks."""

from __future__ import annotations

import json
import platform
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

PARTIAL_SUFFIX = ".partial"  # a run directory being written (deleted when training fails or is interrupted)
RUN_RECORD = "run.json"  # command, data folder + hash, seed, versions of a run


def optimise_step(loss: torch.Tensor, optimiser: torch.optim.Optimizer, scheduler=None) -> float:
    """Back-propagate ``loss``, step the optimiser (and the per-step scheduler); return the loss value."""
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    if scheduler is not None:
        scheduler.step()
    return float(loss.detach())


@contextmanager
def staged_run_dir(out: str | Path) -> Iterator[Path]:
    """A run directory written whole or not at all: yields ``OUT.partial`` (next to ``out``), renamed to ``out``
    when the block ends; an error or an interrupt (Ctrl-C) deletes it, so no half-written run passes for a model.
    ``out`` must not exist or be an empty folder (a run is never overwritten): ``ValueError`` naming it."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out}: run directory already exists and is not empty (a run is never overwritten): "
                         "choose a new --out or delete it")
    stage = out.with_name(out.name + PARTIAL_SUFFIX)
    if stage.exists():  # left by a run that was killed outright (SIGKILL, power cut)
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    stage.rename(out)


def write_run_record(run_dir: str | Path, *, data: str | Path, data_hash: str, seed: int, seconds: float,
                     warnings: tuple[str, ...] = ()) -> Path:
    """``run_dir/run.json``: what reproduces a run: the command line, the data folder and its hash, the seed, the
    training time (s), the versions of Python and the libraries that shape the weights, and the data folder's
    warnings (labels read in another case, no patient_id column)."""
    from importlib import metadata

    from lesiondx import __version__

    versions = {"python": platform.python_version(), "lesiondx": __version__}
    for package in ("torch", "torchvision", "numpy", "scikit-learn", "onnxruntime", "timm"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    cli = Path(sys.argv[0]).name in ("lesiondx", "__main__.py")
    command = " ".join(shlex.quote(a) for a in (["lesiondx", *sys.argv[1:]] if cli else sys.argv))
    record = {"command": command if cli else f"Python API, in: {command}", "data": str(Path(data).resolve()),
              "data_hash": data_hash, "seed": seed, "seconds": round(seconds, 1), "versions": versions,
              "data_warnings": list(warnings), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    target = Path(run_dir) / RUN_RECORD
    target.write_text(json.dumps(record, indent=2) + "\n")
    return target
