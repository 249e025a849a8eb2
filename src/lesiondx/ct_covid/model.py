"""The lesion segmenter: building, loading (run dir or shipped default) and batched inference."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lesiondx.config import config_to_dict
from lesiondx.models import build_segmenter, load_checkpoint
from lesiondx.progress import report

from .config import CovidConfig, read_config

CHECKPOINT = "model.pt"
CONFIG = "config.yaml"


def default_model_dir() -> Path:
    """The shipped model folder: ``$LESIONDX_MODELS/ct-covid`` or ``<repo>/models/ct-covid``."""
    root = os.environ.get("LESIONDX_MODELS")
    return (Path(root) if root else Path(__file__).resolve().parents[3] / "models") / "ct-covid"


def build_model(config: CovidConfig, *, pretrained: bool = True) -> nn.Module:
    """UNet++ (or U-Net) with a 1-channel input, returning lesion logits ``(B, 1, H, W)``."""
    return build_segmenter(config.arch, encoder=config.encoder, in_channels=1, classes=1, pretrained=pretrained)


def to_input(grey: np.ndarray) -> torch.Tensor:
    """Grey levels 0..255, ``(B, H, W)`` → network input ``(B, 1, H, W)`` scaled to [-1, 1]."""
    x = torch.as_tensor(np.asarray(grey, dtype=np.float32))
    return (x / 127.5 - 1.0).unsqueeze(1)


@dataclass(frozen=True)
class LoadedModel:
    """A ready segmenter with the config it was trained with."""

    module: nn.Module
    config: CovidConfig
    meta: dict[str, Any]
    path: Path

    @property
    def version(self) -> str:
        return str(self.meta.get("model_version", self.path.parent.name))


def resolve_model_dir(model: str | Path) -> Path:
    """``"default"`` → the shipped folder; otherwise a run directory holding ``model.pt``."""
    folder = default_model_dir() if str(model) == "default" else Path(model)
    if not (folder / CHECKPOINT).is_file():
        raise FileNotFoundError(f"{folder}: no {CHECKPOINT} (give a run directory from `lesiondx train` or 'default')")
    return folder


def load_model(model: str | Path, *, threads: int | None = None) -> LoadedModel:
    """Load a run directory (or ``"default"``) in eval mode, channels-last for faster CPU inference."""
    folder = resolve_model_dir(model)
    states, meta = load_checkpoint(folder / CHECKPOINT)
    config = read_config(folder / CONFIG) if (folder / CONFIG).is_file() else read_config(**meta.get("config", {}))
    module = build_model(config, pretrained=False)
    module.load_state_dict(states["model"])
    module.eval().to(memory_format=torch.channels_last)
    if threads:
        torch.set_num_threads(threads)
    return LoadedModel(module, config, meta, folder / CHECKPOINT)


def checkpoint_meta(config: CovidConfig, **extra: Any) -> dict[str, Any]:
    """Metadata stored with a checkpoint (config, task, version, training facts)."""
    return {"task": "ct-covid", "config": config_to_dict(config), **extra}


def predict_probs(module: nn.Module, grey: np.ndarray, *, batch: int = 8, fast: bool = True) -> np.ndarray:
    """Lesion probabilities ``(N, H, W)`` for grey slices ``(N, H, W)`` (0..255, model resolution).

    ``fast`` = inference_mode + channels_last batches (the default path); ``False`` = plain eager
    ``no_grad`` contiguous tensors, kept for the benchmark comparison.
    """
    out = np.empty(np.shape(grey), dtype=np.float32)
    module.eval()
    context = torch.inference_mode if fast else torch.no_grad
    with context():
        for start in range(0, len(grey), batch):
            x = to_input(grey[start : start + batch])
            if fast:
                x = x.contiguous(memory_format=torch.channels_last)
            out[start : start + batch] = torch.sigmoid(module(x))[:, 0].float().numpy()
            report("segmenting slices", min(start + batch, len(grey)), len(grey))  # the service's progress line
    return out
