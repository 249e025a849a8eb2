"""Shared network building blocks: backbones with offline weights, segmenters, checkpoints."""

from .backbones import (Backbone, build_backbone, efficientnet_lite, efficientnet_lite0, lite0_weights_path,
                        lite_weights_path, resnet)
from .checkpoint import MAX_SHIPPED_MB, load_checkpoint, save_checkpoint, size_mb
from .segmentation import bce_dice_loss, build_segmenter, dice_loss, dice_score

__all__ = [
    "Backbone", "MAX_SHIPPED_MB", "bce_dice_loss", "build_backbone", "build_segmenter", "dice_loss", "dice_score",
    "efficientnet_lite", "efficientnet_lite0", "lite0_weights_path", "lite_weights_path", "load_checkpoint", "resnet",
    "save_checkpoint", "size_mb",
]
