"""Shared network building blocks (backbones with offline weights, losses, heads)."""

from .backbones import Backbone, build_backbone, efficientnet_lite0, lite0_weights_path, resnet

__all__ = ["Backbone", "build_backbone", "efficientnet_lite0", "lite0_weights_path", "resnet"]
