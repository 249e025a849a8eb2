"""Model checkpoints that ship in the repository: half-precision weights plus a metadata dict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .metrics import MAX_SHIPPED_MB, size_mb  # noqa: F401 (re-exported)


def save_checkpoint(path: str | Path, models: dict[str, nn.Module], meta: dict[str, Any], *, half: bool = True) -> Path:
    """Save several named modules' weights (fp16 when ``half``) and JSON-able ``meta`` in one file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    states = {}
    for name, module in models.items():
        state = module.state_dict()
        states[name] = {k: v.half() if half and v.is_floating_point() else v for k, v in state.items()}
    json.dumps(meta)  # fail early on non-JSON metadata
    torch.save({"format": "lesiondx-1", "meta": meta, "states": states}, path)
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """``(states, meta)`` with float tensors back in fp32; pass ``states[name]`` to load_state_dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != "lesiondx-1":
        raise ValueError(f"{path}: not a lesiondx checkpoint")
    states = {name: {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
              for name, state in blob["states"].items()}
    return states, blob["meta"]
