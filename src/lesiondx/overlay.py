"""Overlay PNGs for people to look at: grey image + heat map + boxes + caption."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lesiondx.data.rois import Box


def _jet(values: np.ndarray) -> np.ndarray:
    """Jet-like colour map for values in [0, 1] → uint8 RGB."""
    v = np.clip(values, 0, 1)[..., None]
    rgb = np.concatenate([1.5 - np.abs(4 * v - 3), 1.5 - np.abs(4 * v - 2), 1.5 - np.abs(4 * v - 1)], axis=-1)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def render_overlay(
    grey: np.ndarray,
    *,
    heatmap: np.ndarray | None = None,
    boxes: Sequence[Box] = (),
    box_labels: Sequence[str] = (),
    caption: str | None = None,
    alpha: float = 0.4,
) -> Image.Image:
    """An RGB image: ``grey`` (0..255, any float) with a heat map in [0, 1] (same shape) blended
    where it is above 0.1, boxes in yellow with optional labels, and a caption bar at the bottom."""
    base = np.clip(np.asarray(grey, dtype=np.float32), 0, 255).astype(np.uint8)
    rgb = np.repeat(base[..., None], 3, axis=-1).astype(np.float32)
    if heatmap is not None:
        if heatmap.shape != base.shape:
            raise ValueError(f"heat map {heatmap.shape} does not match image {base.shape}")
        colour = _jet(heatmap).astype(np.float32)
        weight = (alpha * (heatmap > 0.1))[..., None]
        rgb = rgb * (1 - weight) + colour * weight
    image = Image.fromarray(rgb.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    width = max(2, round(min(base.shape) / 200))
    for index, box in enumerate(boxes):
        draw.rectangle([box.x1, box.y1, box.x2 - 1, box.y2 - 1], outline=(255, 220, 0), width=width)
        if index < len(box_labels) and box_labels[index]:
            draw.text((box.x1 + 2, max(0, box.y1 - 12)), box_labels[index], fill=(255, 220, 0))
    if caption:
        bar = Image.new("RGB", (image.width, 22), (20, 20, 20))
        ImageDraw.Draw(bar).text((6, 5), caption, fill=(255, 255, 255))
        canvas = Image.new("RGB", (image.width, image.height + 22))
        canvas.paste(image, (0, 0))
        canvas.paste(bar, (0, image.height))
        image = canvas
    return image


def save_overlay(path: str | Path, grey: np.ndarray, **kwargs) -> Path:
    """Render with :func:`render_overlay` and save as PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    render_overlay(grey, **kwargs).save(path)
    return path
