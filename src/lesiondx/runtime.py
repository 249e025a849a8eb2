"""Inference engine choice and cached ONNX Runtime sessions; torch-free (torch is only for training and the
``torch`` engine, e.g. Grad-CAM for research).

Engine: ``LESIONDX_ENGINE`` (or ``--engine``) = ``auto`` (default: ONNX Runtime when ``onnxruntime`` is
importable and every ``.onnx`` file of the model exists and matches its checkpoint, torch otherwise),
``onnx`` or ``torch``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ENGINES = ("auto", "onnx", "torch")
ENGINE_ENV = "LESIONDX_ENGINE"
THREADS_ENV = "LESIONDX_THREADS"
MODELS_ENV = "LESIONDX_MODELS"
REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
META_KEY = "lesiondx"  # ONNX metadata_props key holding the JSON metadata written at export time


class EngineError(RuntimeError, ValueError):
    """The requested engine cannot run this model (missing package or export); a ValueError too, so the CLI
    and the service report it as a one-line user error."""


def shipped_model_dir(task: str) -> Path:
    """The folder of ``task``'s shipped model (``--model default``): ``$LESIONDX_MODELS/<task>`` when set (a site's
    own copy of the models folder), else the repository's ``models/<task>``."""
    root = os.environ.get(MODELS_ENV)
    return (Path(root) if root else REPO_MODELS) / task


def requested_engine(engine: str | None = None) -> str:
    """``engine`` or ``$LESIONDX_ENGINE`` or ``auto``, validated."""
    name = (engine or os.environ.get(ENGINE_ENV) or "auto").strip().lower()
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {name!r}")
    return name


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file's bytes (cached per path, size and modification time)."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # noqa: ARG001 (size, mtime: cache key only)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stale(onnx_path: Path, checkpoint: Path | None) -> str | None:
    """Why the export at ``onnx_path`` does not belong to ``checkpoint`` (None when it does)."""
    if not onnx_path.is_file():
        return f"{onnx_path}: no ONNX export (run `python -m lesiondx.export_onnx`)"
    if checkpoint is None or not checkpoint.is_file():
        return None
    expected = OnnxNet.load(onnx_path).meta.get("source_sha256")
    if expected != file_sha256(checkpoint):
        return f"{onnx_path}: exported from another {checkpoint.name} (re-export with `python -m lesiondx.export_onnx`)"
    return None


def choose_engine(exports: Sequence[tuple[Path, Path | None]], engine: str | None = None) -> str:
    """``"onnx"`` or ``"torch"`` for a model made of ``(onnx file, checkpoint it was exported from)`` pairs.

    ``auto`` picks onnx when onnxruntime is importable and every export exists and matches its checkpoint's
    sha256, torch otherwise; an explicit ``onnx`` that cannot run raises :class:`EngineError` with the reason.
    """
    name = requested_engine(engine)
    if name == "torch":
        if not torch_available():
            raise EngineError("engine 'torch' needs the training extras: pip install 'lesiondx[train]'")
        return "torch"
    problem = None if onnxruntime_available() else "onnxruntime is not installed"
    if problem is None:
        problem = next((p for p in (_stale(o, c) for o, c in exports) if p), None)
    if problem is None:
        return "onnx"
    if name == "onnx" or not torch_available():
        raise EngineError(f"cannot run on ONNX Runtime: {problem}"
                          + ("" if torch_available() else "; torch (lesiondx[train]) is not installed either"))
    return "torch"


def threads() -> int:
    """Intra-op threads: ``$LESIONDX_THREADS`` or the cores this process may use."""
    env = os.environ.get(THREADS_ENV)
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@functools.lru_cache(maxsize=16)
def _session(path: str, mtime_ns: int, n_threads: int):  # noqa: ARG001 (mtime: cache key only)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    # idle intra-op threads sleep instead of spin-waiting: on shared CPUs the spinning burnt CPU time that the
    # other thread (and process) needed (benchmarks/runtime.md, "session options")
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class OnnxNet:
    """One exported network: a cached ONNX Runtime session and the metadata stored in the file."""

    path: Path
    session: Any = field(repr=False)
    meta: dict[str, Any] = field(repr=False)

    @classmethod
    def load(cls, path: str | Path) -> "OnnxNet":
        """Session for ``path`` (cached per file and modification time) with ``threads()`` intra-op threads."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ONNX model not found")
        session = _session(str(path.resolve()), path.stat().st_mtime_ns, threads())
        raw = session.get_modelmeta().custom_metadata_map.get(META_KEY, "{}")
        return cls(path, session, json.loads(raw))

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.session.get_inputs())

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs by name for float32 inputs given by name."""
        feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feeds)))


def set_torch_threads(n: int) -> None:
    """``torch.set_num_threads(n)`` when torch is already imported (the torch engine); no-op otherwise."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(max(1, int(n)))


def cam_image(signed: np.ndarray, size: int, positive: bool) -> np.ndarray:
    """A class activation map ``(h, w)`` (signed evidence for the positive class) → ``(size, size)`` in [0, 1]
    explaining the predicted class: ReLU of the evidence for it, bilinear to the crop, scaled to max 1; when no
    position supports it, the min–max scaled map (never an empty heat map)."""
    from lesiondx.io.windows import resize

    signed = np.asarray(signed, np.float32) * (1.0 if positive else -1.0)
    full = resize(signed, (size, size), order=1)
    relu = np.maximum(full, 0.0)
    if relu.max() > 0:
        return relu / relu.max()
    span = float(full.max() - full.min())
    return (full - full.min()) / span if span > 0 else np.ones_like(full)
