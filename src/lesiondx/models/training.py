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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

PARTIAL_SUFFIX = ".partial"  # a run directory being written (deleted when training fails or is interrupted)
RUN_RECORD = "run.json"  # command, data folder + hash, seed, versions of a run
DATA_HASH_FILE = "data_hash.txt"  # sha256 of labels.csv and the images a run trained on


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
                     warnings: tuple[str, ...] = (), run_warnings: tuple[str, ...] = ()) -> Path:
    """``run_dir/run.json``: what reproduces a run: the command line, the data folder and its hash, the seed, the
    training time (s), the versions of Python and the libraries that shape the weights, the data folder's
    warnings (labels read in another case, no patient_id column) and the run's own (``run_warnings``: e.g. a part
    of the model left untrained by the config)."""
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
              "data_warnings": list(warnings), "run_warnings": list(run_warnings), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    target = Path(run_dir) / RUN_RECORD
    target.write_text(json.dumps(record, indent=2) + "\n")
    return target


@dataclass
class TrainingRun:
    """A run being written by :func:`training_run`: ``path`` is the staged directory (``OUT.partial``), ``name``
    the name the finished run will have (``OUT``'s); ``data_hash`` is set by :meth:`hash_data`; ``warnings`` are
    the run's own (:meth:`warn`)."""

    path: Path
    name: str
    data_hash: str = ""
    warnings: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        """Say ``text`` on stderr now and keep it for ``run.json`` (``run_warnings``; the CLI repeats it at the end)."""
        print(f"warning: {text}", file=sys.stderr, flush=True)
        self.warnings.append(text)

    def hash_data(self, data: str | Path, frame: Any) -> str:
        """Hash labels.csv of folder ``data`` and the images of ``frame`` (the rows trained on), write it to
        ``data_hash.txt`` and keep it for ``run.json``; returns the hex digest."""
        from lesiondx.data import data_hash

        self.data_hash = data_hash(Path(data), frame)
        (self.path / DATA_HASH_FILE).write_text(self.data_hash + "\n")
        return self.data_hash


@contextmanager
def training_run(out: str | Path, *, data: str | Path, seed: int,
                 warnings: tuple[str, ...] = ()) -> Iterator[TrainingRun]:
    """What every task's ``train`` writes into: a :func:`staged_run_dir` (``OUT.partial``, renamed to ``out`` at the
    end; an error or Ctrl-C leaves nothing; a non-empty ``out`` is refused) that gets ``run.json``
    (:func:`write_run_record`, seconds counted from entering the block) when the block ends. The block must call
    :meth:`TrainingRun.hash_data` on the rows it trains on."""
    started = time.time()
    with staged_run_dir(out) as stage:
        run = TrainingRun(stage, Path(out).name)
        yield run
        if not run.data_hash:
            raise RuntimeError("training_run: the training rows were never hashed (call run.hash_data)")
        write_run_record(stage, data=data, data_hash=run.data_hash, seed=seed, seconds=time.time() - started,
                         warnings=warnings, run_warnings=tuple(run.warnings))
