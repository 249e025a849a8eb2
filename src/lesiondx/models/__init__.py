"""Shared network building blocks: backbones with offline weights, segmenters, checkpoints, ONNX export.

Names are imported on first use (PEP 562), so ``from lesiondx.models import dice_score`` does not import torch:
the inference service runs on ONNX Runtime without it.
"""

from __future__ import annotations

from lesiondx._lazy import lazy_names

_WHERE = {
    "Backbone": "backbones", "build_backbone": "backbones", "efficientnet_lite": "backbones",
    "efficientnet_lite0": "backbones", "lite0_weights_path": "backbones", "lite_weights_path": "backbones",
    "resnet": "backbones",
    "MAX_SHIPPED_MB": "metrics", "size_mb": "metrics", "dice_score": "metrics",
    "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "bce_dice_loss": "segmentation", "build_segmenter": "segmentation", "dice_loss": "segmentation",
    "export_onnx": "export",
}

__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
