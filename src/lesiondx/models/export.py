"""ONNX export of trained networks (training side: needs torch and ``onnx``, the ``lesiondx[train]`` extras).

Each export is one self-contained ``.onnx`` file (fp32 weights, opset 17, dynamic batch) with the JSON metadata
inference needs stored under the ``lesiondx`` key of ``metadata_props`` — including ``source_sha256``, the
checkpoint it was exported from, so a stale export is never used silently (``lesiondx.runtime.choose_engine``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lesiondx.runtime import META_KEY, OnnxNet, file_sha256

from .metrics import MAX_SHIPPED_MB, size_mb

OPSET = 17


class Probabilities(nn.Module):
    """``sigmoid(inner(x))``: segmenters are exported with probabilities as their output."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).sigmoid()


def export_onnx(module: nn.Module, example: Sequence[torch.Tensor], path: str | Path, *, inputs: Sequence[str],
                outputs: Sequence[str], meta: dict[str, Any], source: Path | None = None,
                tolerance: float = 1e-3) -> Path:
    """Write ``module`` (eval mode, fp32) to ``path`` with a dynamic batch axis on every input and output,
    ``meta`` (JSON) and the sha256 of ``source`` (its checkpoint) in the file's metadata. Checks ONNX Runtime
    against torch on ``example`` (max abs difference ≤ ``tolerance`` per output, stored as ``export_check``; a file
    that fails is removed); warns for files above ``MAX_SHIPPED_MB`` (the repository's limit for shipped files)."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.float().eval().to(memory_format=torch.contiguous_format)
    axes = {name: {0: "batch"} for name in (*inputs, *outputs)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, tuple(example), str(path), dynamo=False, opset_version=OPSET,
                          input_names=list(inputs), output_names=list(outputs), dynamic_axes=axes,
                          do_constant_folding=True)
    diffs = parity(module, path, {name: x.numpy() for name, x in zip(inputs, example)})
    bad = {k: v for k, v in diffs.items() if not v <= tolerance}
    if bad:
        path.unlink()
        raise RuntimeError(f"{path}: ONNX Runtime differs from torch by {bad} (tolerance {tolerance})")
    model = onnx.load(str(path))
    full = dict(meta) | {"export_check": {"max_abs_diff": diffs, "opset": OPSET, "torch": torch.__version__}}
    if source is not None:
        full |= {"source": source.name, "source_sha256": file_sha256(source)}
    model.metadata_props.add(key=META_KEY, value=json.dumps(full))
    onnx.save(model, str(path))
    if size_mb(path) > MAX_SHIPPED_MB:  # fine for a hospital's own run; the shipped files are held to it by a test
        warnings.warn(f"{path}: {size_mb(path):.1f} MB, above the {MAX_SHIPPED_MB:.0f} MB limit for files shipped "
                      "in the repository (usable here; do not commit it)", stacklevel=2)
    return path


def parity(module: nn.Module, path: str | Path, feeds: dict[str, np.ndarray]) -> dict[str, float]:
    """Max absolute difference per output between torch (eval, no grad) and ONNX Runtime on the same inputs."""
    net = OnnxNet.load(path)
    with torch.inference_mode():
        ref = module.float().eval()(*(torch.from_numpy(np.asarray(v, np.float32)) for v in feeds.values()))
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    got = net.run(**feeds)
    return {name: float(np.abs(got[name] - r.numpy()).max()) for name, r in zip(got, ref)}
