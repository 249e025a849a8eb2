"""Out-of-distribution score of ct-covid: distance of the model's own encoder features (UNet++ Lite0
encoder, last two stages global-average-pooled, 432 values) of the lung-cropped model inputs to those of
the MedSeg training slices (:mod:`lesiondx.gate.ood`: whitened top-16 principal axes, 3 nearest
neighbours, threshold = 99th percentile of leave-one-out training scores). A series' score is the median
over its middle half of slices (where a chest CT shows lungs). ``python -m lesiondx.ct_covid.ood MEDSEG
OUT.npz`` rebuilds ``models/ct-covid/ood_stats.npz`` and measures it on the MedSeg test slices.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from lesiondx.gate.ood import QUANTILE, OodStats, fit_ood, save_stats
from lesiondx.io import display_grey

from .model import CHECKPOINT, LoadedModel, to_input, to_input_array
from .pipeline import SeriesResult, analyse_series, resize_stack

N_COMPONENTS, NEIGHBOURS = 16, 3


def model_inputs(pixels: np.ndarray, is_hu: bool, result: SeriesResult, model: LoadedModel) -> np.ndarray:
    """The grey model inputs ``(S, size, size)`` of an analysed series (its lung crop, resized)."""
    size, crop = model.config.input_size, result.crop
    grey = display_grey(pixels, is_hu, model.config.window)
    return resize_stack(grey[:, crop.y1 : crop.y2, crop.x1 : crop.x2], (size, size))


FEATURES_ONNX = "encoder_features.onnx"  # beside model.onnx: the encoder's pooled features on ONNX Runtime


def encoder_features(model: LoadedModel, inputs: np.ndarray, batch: int = 8) -> np.ndarray:
    """``(S, 432)`` pooled features of the encoder's last two stages: ``encoder_features.onnx`` on ONNX Runtime
    (``FileNotFoundError`` when it was not exported), the encoder itself on torch."""
    if model.engine == "onnx":
        from lesiondx.runtime import OnnxNet

        path = model.path.parent / FEATURES_ONNX
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing (python -m lesiondx.ct_covid.ood --export)")
        net_onnx = OnnxNet.load(path)
        return np.concatenate([net_onnx.run(x=to_input_array(inputs[s : s + batch]))["features"]
                               for s in range(0, len(inputs), batch)])
    import torch

    net = getattr(model.module, "inner", model.module)
    out = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch):
            x = to_input(inputs[start : start + batch]).expand(-1, 3, -1, -1)
            stages = net.encoder(x)
            out.append(torch.cat([stages[-2].mean((2, 3)), stages[-1].mean((2, 3))], 1).float().numpy())
    return np.concatenate(out)


def series_ood(model: LoadedModel, pixels: np.ndarray, is_hu: bool, result: SeriesResult, stats: OodStats | None) -> dict:
    """``{"score", "threshold", "out_of_distribution", "slices_scored"}`` for a series (``None`` without stats)."""
    if stats is None:
        return {"score": None, "threshold": None, "out_of_distribution": None,
                "note": "no out-of-distribution statistics for this model"}
    n = len(pixels)
    middle = np.arange(n)[n // 4 : max(n // 4 + 1, n - n // 4)]
    inputs = model_inputs(pixels[middle], is_hu, result, model)
    try:
        features = encoder_features(model, inputs)
    except FileNotFoundError as exc:
        return {"score": None, "threshold": round(stats.threshold, 3), "out_of_distribution": None,
                "note": f"out-of-distribution score not computed: {exc.args[0]}"}
    score = float(np.median(stats.score(features)))
    return {"score": round(score, 3), "threshold": round(stats.threshold, 3),
            "out_of_distribution": score > stats.threshold, "slices_scored": int(len(middle))}


def _slice_features(model: LoadedModel, image_path: Path) -> np.ndarray:
    from lesiondx.io import read_raster_array

    grey = read_raster_array(image_path)[None]
    result = analyse_series(grey, model, is_hu=False)
    return encoder_features(model, model_inputs(grey, False, result, model))


def build(medseg: Path, out: Path) -> dict:
    """Fit on the MedSeg ``train`` slices (the shipped model's training data); false alarms on ``test``."""
    import pandas as pd

    from .model import load_model

    model = load_model("default")
    labels = pd.read_csv(medseg / "labels.csv")
    feats = {split: np.concatenate([_slice_features(model, medseg / p) for p in labels.loc[labels["split"] == split, "image"]])
             for split in ("train", "test")}
    stats = fit_ood(feats["train"], n_components=N_COMPONENTS, neighbours=NEIGHBOURS)
    held = stats.score(feats["test"])
    report = {"fitted_on": f"{len(feats['train'])} MedSeg train slices (the model's training data)",
              "threshold": stats.threshold, "threshold_rule": f"{QUANTILE:.0%} quantile of leave-one-out training scores",
              "n_components": N_COMPONENTS, "neighbours": NEIGHBOURS,
              "medseg_test_slices": {"n": int(len(held)), "false_alarm_rate": float((held > stats.threshold).mean()),
                                     "median_score": float(np.median(held))}}
    save_stats(stats, out, report)
    return report




def export_encoder_features(folder: Path) -> Path:
    """Write ``folder/encoder_features.onnx`` (``x`` ``(B, 1, S, S)`` in [-1, 1] → ``features`` ``(B, 432)``)
    from ``folder/model.pt``, checked against torch (needs ``lesiondx[train]``)."""
    import torch
    from torch import nn

    from lesiondx.models.export import export_onnx

    from .model import load_model

    loaded = load_model(folder, engine="torch")
    net = getattr(loaded.module, "inner", loaded.module)

    class EncoderFeatures(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            stages = self.net.encoder(torch.cat([x, x, x], 1))
            return torch.cat([stages[-2].mean((2, 3)), stages[-1].mean((2, 3))], 1)

    size = loaded.config.input_size
    return export_onnx(EncoderFeatures(), [torch.zeros(2, 1, size, size)], Path(folder) / FEATURES_ONNX,
                       inputs=["x"], outputs=["features"], source=Path(folder) / CHECKPOINT,
                       meta={"task": "ct-covid", "network": "UNet++ encoder pooled features (OOD score)"})


if __name__ == "__main__":
    if sys.argv[1:2] == ["--export"]:  # python -m lesiondx.ct_covid.ood --export [MODEL_DIR]
        print(export_encoder_features(Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[3]
                                      / "models" / "ct-covid"))
    else:
        print(json.dumps(build(Path(sys.argv[1]), Path(sys.argv[2])), indent=2))
