"""Regions of interest from masks: lesion crops, liver-background crops, boxes, quadrants."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lesiondx.io.windows import resize

QUADRANTS = ("upper-left", "upper-right", "lower-left", "lower-right")


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: ``x1, y1`` inclusive, ``x2, y2`` exclusive."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        """``(x, y)`` centre in pixels."""
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2

    def as_list(self) -> list[int]:
        return [self.x1, self.y1, self.x2, self.y2]

    def iou(self, other: "Box") -> float:
        """Intersection over union with another box."""
        inter = Box(max(self.x1, other.x1), max(self.y1, other.y1), min(self.x2, other.x2), min(self.y2, other.y2))
        overlap = inter.area if inter.width > 0 and inter.height > 0 else 0
        union = self.area + other.area - overlap
        return overlap / union if union else 0.0


def mask_box(mask: np.ndarray) -> Box | None:
    """Bounding box of all non-zero pixels, or ``None`` for an empty mask."""
    rows, cols = np.nonzero(np.asarray(mask))
    if rows.size == 0:
        return None
    return Box(int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)


def disk_closing(mask: np.ndarray, radius: float, *, fill_holes: bool = False) -> np.ndarray:
    """Binary closing of a 2D ``mask`` with a Euclidean disk of ``radius`` pixels, via two distance transforms
    (time independent of the radius), on a zero-padded copy so the image border does not open it; with
    ``fill_holes`` the holes are filled before the padding is cut off."""
    pad = int(np.ceil(radius)) + 1
    padded = np.pad(np.asarray(mask, dtype=bool), pad)
    grown = ndimage.distance_transform_edt(~padded) <= radius
    closed = ndimage.distance_transform_edt(grown) > radius
    if fill_holes:
        closed = ndimage.binary_fill_holes(closed)
    return closed[pad:-pad, pad:-pad]


def boxes_from_mask(mask: np.ndarray, *, min_area: int = 1) -> list[Box]:
    """One box per 8-connected component of the mask with at least ``min_area`` pixels."""
    labels, n = ndimage.label(np.asarray(mask) > 0, structure=np.ones((3, 3)))
    boxes = []
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None:
            continue
        if int((labels[found] == index).sum()) >= min_area:
            rows, cols = found
            boxes.append(Box(cols.start, rows.start, cols.stop, rows.stop))
    return boxes


def quadrant(box: Box, shape: tuple[int, int]) -> str:
    """Image quadrant (``upper-left`` ... ``lower-right``) holding the box centre; shape = (rows, cols).

    Image left is patient right on a standard axial CT display.
    """
    x, y = box.center
    vertical = "upper" if y < shape[0] / 2 else "lower"
    horizontal = "left" if x < shape[1] / 2 else "right"
    return f"{vertical}-{horizontal}"


def square_crop(image: np.ndarray, center: tuple[float, float], side: float, size: int, *, order: int = 1) -> np.ndarray:
    """A ``side``-pixel square around ``center`` = (x, y), zero-padded at borders, resized to ``size``²."""
    side_px = max(2, int(round(side)))
    x0 = int(round(center[0] - side_px / 2))
    y0 = int(round(center[1] - side_px / 2))
    out = np.zeros((side_px, side_px) + image.shape[2:], dtype=np.float32)
    sy0, sx0 = max(0, y0), max(0, x0)
    sy1, sx1 = min(image.shape[0], y0 + side_px), min(image.shape[1], x0 + side_px)
    if sy1 > sy0 and sx1 > sx0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return resize(out, (size, size) + image.shape[2:], order=order).astype(np.float32)


def lesion_roi(
    image: np.ndarray,
    lesion_mask: np.ndarray | None = None,
    *,
    box: Box | None = None,
    margin: float = 0.25,
    size: int = 224,
    side: float | None = None,
) -> np.ndarray:
    """Square lesion crop resized to ``size``².

    By default the crop is the lesion box plus ``margin`` (a fraction of the longer side). Pass
    ``side`` (pixels) to crop at a fixed scale around the lesion centre instead, e.g. a fraction of
    the scan sector width, so small lesions are not magnified (the size shortcut); the crop then
    grows only when the lesion itself is larger than ``side``.
    """
    if box is None:
        if lesion_mask is None:
            raise ValueError("give a lesion mask or a box")
        box = mask_box(lesion_mask)
        if box is None:
            raise ValueError("lesion mask is empty")
    longest = max(box.width, box.height)
    crop_side = longest * (1 + 2 * margin)
    if side is not None:
        crop_side = max(float(side), crop_side)
    return square_crop(image, box.center, crop_side, size)


def background_roi(
    image: np.ndarray,
    liver_mask: np.ndarray,
    lesion_mask: np.ndarray | None = None,
    *,
    margin_px: int = 10,
    size: int = 224,
) -> np.ndarray:
    """Liver background: pixels inside the liver and outside the (dilated) lesion, others zeroed,
    cropped to that region's bounding square and resized to ``size``²."""
    region = np.asarray(liver_mask) > 0
    if lesion_mask is not None and np.any(lesion_mask):
        grown = ndimage.binary_dilation(np.asarray(lesion_mask) > 0, iterations=max(1, margin_px))
        region &= ~grown
    box = mask_box(region)
    if box is None:
        raise ValueError("no liver background left outside the lesion")
    masked = np.where(region, image, 0).astype(np.float32)
    return square_crop(masked, box.center, max(box.width, box.height), size)
