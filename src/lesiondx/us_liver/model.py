"""DCNN-US networks: a frozen ImageNet trunk shared by all branches, and per-branch trainable tails.

Model_L  = lesion branch → dropout → batch norm → linear → malignancy logit.
Model_LB = lesion branch + liver-background branch (own weights), features concatenated → head;
           optional background-type head on the background branch.
Grey crops are repeated to 3 channels. The trunk is cut so that cached trunk features train cheaply.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from lesiondx.models import Backbone, build_backbone


def split_backbone(backbone: Backbone, trainable_tail: int) -> tuple[nn.Module, nn.Module]:
    """``(trunk, tail)``: the frozen first part and the part fine-tuned per branch.

    Lite0: tail = conv head (+ the last ``trainable_tail`` blocks). ResNet: tail = layer4
    (+ layer3 when ``trainable_tail`` ≥ 1). The tail ends in global average pooling.
    """
    m = backbone.module
    if hasattr(m, "conv_head"):  # timm EfficientNet-Lite0
        cut = len(m.blocks) - trainable_tail
        trunk = nn.Sequential(m.conv_stem, m.bn1, *m.blocks[:cut])
        tail = nn.Sequential(*m.blocks[cut:], m.conv_head, m.bn2, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    else:  # torchvision ResNet
        layers = [m.layer1, m.layer2, m.layer3, m.layer4]
        cut = 3 - min(trainable_tail, 1)
        trunk = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, *layers[:cut])
        tail = nn.Sequential(*layers[cut:], nn.AdaptiveAvgPool2d(1), nn.Flatten())
    for p in trunk.parameters():
        p.requires_grad_(False)
    return trunk.eval(), tail


class Trunk(nn.Module):
    """Normalises grey 0..255 crops ``(B, H, W)`` and runs the frozen trunk."""

    def __init__(self, trunk: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.trunk = trunk
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        x = (grey[:, None].expand(-1, 3, -1, -1) / 255.0 - self.mean) / self.std
        return self.trunk(x)


class DcnnUs(nn.Module):
    """Head network on trunk features: one or two branches, logit output ``(B,)``."""

    def __init__(self, tail: nn.Module, features: int, *, branches: str = "LB", dropout: float = 0.3,
                 n_background_types: int = 0) -> None:
        super().__init__()
        self.lesion = copy.deepcopy(tail)
        self.background = copy.deepcopy(tail) if branches == "LB" else None
        total = features * (2 if self.background is not None else 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.BatchNorm1d(total), nn.Linear(total, 1))
        self.background_head = (nn.Linear(features, n_background_types)
                                if self.background is not None and n_background_types > 1 else None)

    def embed(self, lesion: torch.Tensor, background: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(joint embedding, background embedding)`` from trunk feature maps."""
        z = self.lesion(lesion)
        if self.background is None:
            return z, None
        if background is None:
            raise ValueError("Model_LB needs a background ROI")
        zb = self.background(background)
        return torch.cat([z, zb], dim=1), zb

    def forward(self, lesion: torch.Tensor, background: torch.Tensor | None = None) -> torch.Tensor:
        z, _ = self.embed(lesion, background)
        return self.head(z)[:, 0]


def batch_hard_triplet(embeddings: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss on L2-normalised embeddings: for each anchor, its farthest positive
    and nearest negative; anchors lacking either are skipped (0 when none qualifies)."""
    e = F.normalize(embeddings, dim=1)
    dist = torch.cdist(e, e)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask, neg_mask = same & ~eye, ~same
    valid = pos_mask.any(1) & neg_mask.any(1)
    if not valid.any():
        return embeddings.sum() * 0.0
    hardest_pos = dist.masked_fill(~pos_mask, -1.0).max(1).values
    hardest_neg = dist.masked_fill(~neg_mask, 1e9).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


def base_backbone(name: str, trainable_tail: int) -> tuple[Trunk, nn.Module, int, bool]:
    """``(trunk module, tail template, feature count, pretrained?)`` for a backbone name."""
    backbone = build_backbone(name)
    trunk, tail = split_backbone(backbone, trainable_tail)
    return Trunk(trunk, backbone.mean, backbone.std).eval(), tail, backbone.features, backbone.pretrained


class Ensemble(nn.Module):
    """Full inference model: trunk + several fold heads; output = mean probability ``(B,)``."""

    def __init__(self, trunk: Trunk, members: list[DcnnUs]) -> None:
        super().__init__()
        self.trunk = trunk
        self.members = nn.ModuleList(members)

    def forward(self, lesion: torch.Tensor, background: torch.Tensor | None = None) -> torch.Tensor:
        fl = self.trunk(lesion)
        fb = self.trunk(background) if background is not None else None
        return torch.stack([torch.sigmoid(m(fl, fb)) for m in self.members]).mean(0)

