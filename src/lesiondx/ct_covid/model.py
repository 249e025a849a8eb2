"""The lesion segmenter: building, loading (run dir or shipped default; ONNX Runtime or torch), batched
inference and ONNX export. torch is imported only for the torch engine and for training/export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lesiondx.config import config_to_dict
from lesiondx.progress import report
from lesiondx.runtime import OnnxNet, choose_engine, set_torch_threads

from .candidates import CandidateFilter
from .config import CovidConfig, read_config

if TYPE_CHECKING:
    import torch
    from torch import nn

CHECKPOINT = "model.pt"
ONNX = "model.onnx"
CONFIG = "config.yaml"


def default_model_dir() -> Path:
    """The shipped model folder: ``$LESIONDX_MODELS/ct-covid`` or ``<repo>/models/ct-covid``."""
    from lesiondx.runtime import shipped_model_dir

    return shipped_model_dir("ct-covid")


def build_model(config: CovidConfig, *, pretrained: bool = True) -> nn.Module:
    """UNet++ (or U-Net) with a 1-channel input, returning lesion logits ``(B, 1, H, W)``."""
    from lesiondx.models import build_segmenter

    return build_segmenter(config.arch, encoder=config.encoder, in_channels=1, classes=1, pretrained=pretrained)


def to_input_array(grey: np.ndarray) -> np.ndarray:
    """Grey levels 0..255, ``(B, H, W)`` → network input ``(B, 1, H, W)`` float32 scaled to [-1, 1]."""
    return (np.asarray(grey, dtype=np.float32) / np.float32(127.5) - np.float32(1.0))[:, None]


def to_input(grey: np.ndarray) -> torch.Tensor:
    """``to_input_array`` as a torch tensor (training and the torch engine)."""
    import torch

    return torch.from_numpy(to_input_array(grey))


@dataclass(frozen=True)
class LoadedModel:
    """A ready segmenter (a torch module, or an :class:`OnnxNet` on ONNX Runtime) with its training config."""

    module: Any
    config: CovidConfig
    meta: dict[str, Any]
    path: Path
    candidate_filter: CandidateFilter | None = None

    @property
    def version(self) -> str:
        """The segmenter's version, ``+`` the candidate filter's when one is used."""
        base = str(self.meta.get("model_version", self.path.parent.name))
        tag = self.candidate_filter.meta.get("version") if self.candidate_filter is not None else None
        return f"{base}+{tag}" if tag else base

    @property
    def engine(self) -> str:
        return "onnx" if isinstance(self.module, OnnxNet) else "torch"


def resolve_model_dir(model: str | Path) -> Path:
    """``"default"`` → the shipped folder; otherwise a run directory holding ``model.pt``."""
    folder = default_model_dir() if str(model) == "default" else Path(model)
    if not (folder / CHECKPOINT).is_file():
        raise FileNotFoundError(f"{folder}: no {CHECKPOINT} (give a run directory from `lesiondx train` or 'default')")
    return folder


def load_filter(folder: Path, config: CovidConfig) -> CandidateFilter | None:
    """The candidate filter named by ``config.candidate_filter`` in ``folder`` (its threshold from the config)."""
    if not config.candidate_filter:
        return None
    path = Path(folder) / config.candidate_filter
    if not path.is_file():
        raise FileNotFoundError(f"{path}: candidate filter named in {folder / CONFIG} is missing")
    return CandidateFilter.from_json(path).with_threshold(config.filter_threshold)


def load_model(model: str | Path, *, threads: int | None = None, engine: str | None = None) -> LoadedModel:
    """Load a run directory (or ``"default"``) in eval mode: ``model.onnx`` on ONNX Runtime, or ``model.pt``
    on torch (channels-last), as :func:`lesiondx.runtime.choose_engine` decides."""
    folder = resolve_model_dir(model)
    if choose_engine([(folder / ONNX, folder / CHECKPOINT)], engine) == "onnx":
        net = OnnxNet.load(folder / ONNX)
        meta = net.meta.get("checkpoint_meta", {})
        config = read_config(folder / CONFIG) if (folder / CONFIG).is_file() else read_config(**meta.get("config", {}))
        return LoadedModel(net, config, meta, folder / CHECKPOINT, load_filter(folder, config))
    import torch

    from lesiondx.models import load_checkpoint

    states, meta = load_checkpoint(folder / CHECKPOINT)
    config = read_config(folder / CONFIG) if (folder / CONFIG).is_file() else read_config(**meta.get("config", {}))
    module = build_model(config, pretrained=False)
    module.load_state_dict(states["model"])
    module.eval().to(memory_format=torch.channels_last)
    if threads:
        set_torch_threads(threads)
    return LoadedModel(module, config, meta, folder / CHECKPOINT, load_filter(folder, config))


def checkpoint_meta(config: CovidConfig, **extra: Any) -> dict[str, Any]:
    """Metadata stored with a checkpoint (config, task, version, training facts)."""
    return {"task": "ct-covid", "config": config_to_dict(config), **extra}


def predict_probs(module: Any, grey: np.ndarray, *, batch: int = 8, fast: bool = True) -> np.ndarray:
    """Lesion probabilities ``(N, H, W)`` for grey slices ``(N, H, W)`` (0..255, model resolution).

    ``module`` is an :class:`OnnxNet` (ONNX Runtime) or a torch module; for torch, ``fast`` = inference_mode +
    channels_last batches, ``False`` = plain eager ``no_grad`` contiguous tensors (the benchmark's eager path).
    """
    out = np.empty(np.shape(grey), dtype=np.float32)
    if isinstance(module, OnnxNet):
        for start in range(0, len(grey), batch):
            out[start : start + batch] = module.run(x=to_input_array(grey[start : start + batch]))["prob"][:, 0]
            report("segmenting slices", min(start + batch, len(grey)), len(grey))  # the service's progress line
        return out
    import torch

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


def export_model(folder: Path) -> Path:
    """Write ``folder/model.onnx`` (input ``x`` ``(B, 1, S, S)`` in [-1, 1] → ``prob`` ``(B, 1, S, S)``, the
    sigmoid inside the graph) from ``folder/model.pt``; training calls this, so ``lesiondx train`` ships both."""
    import torch

    from lesiondx.models.export import Probabilities, export_onnx

    loaded = load_model(folder, engine="torch")
    size = loaded.config.input_size
    meta = {"task": "ct-covid", "network": "lesion segmenter", "input_range": [-1, 1],
            "checkpoint_meta": loaded.meta | {"model_version": loaded.meta.get("model_version", loaded.version)}}
    return export_onnx(Probabilities(loaded.module), [torch.zeros(2, 1, size, size)], folder / ONNX,
                       inputs=["x"], outputs=["prob"], meta=meta, source=folder / CHECKPOINT)
